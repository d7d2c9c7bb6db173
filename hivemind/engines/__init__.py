"""Where the stages run at scale. The local engine is the stages themselves; `ray/` runs embed, score and
analyze on a Ray cluster and gives the same tables (hivemind.pipeline picks the engine per stage)."""

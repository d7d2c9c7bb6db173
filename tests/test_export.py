"""Inspect AI export: one log per system, read back with inspect_ai's own reader."""

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import inspect_ai  # noqa: E402,F401  in the dev extra: missing, this module errors (pip install -e '.[dev]')

from test_snapshot import analysed  # noqa: E402,F401  (the module-scoped analysed run fixture)

from hivemind import HivemindError  # noqa: E402
from hivemind.runs.export import export_inspect  # noqa: E402
from hivemind.store import Score, Store  # noqa: E402


@pytest.fixture(scope="module")
def exported(analysed, tmp_path_factory):  # noqa: F811
    beta = analysed.systems[1].identity
    with Store(analysed.store_path) as store:
        store.add_scores([Score(beta, "q1", 0, "judge", 3.0, raw="3"), Score(beta, "q1", 2, "judge", 5.0, raw="5"),
                          Score(beta, "q2", 1, "judge", None, error="unparseable")])
    out = tmp_path_factory.mktemp("inspect")
    return export_inspect(analysed, out=out)


def test_one_log_per_system_with_every_answer(exported, analysed):  # noqa: F811
    from inspect_ai.log import list_eval_logs, read_eval_log

    assert len(exported) == 2 and all(p.suffix == ".eval" for p in exported)
    assert len(list_eval_logs(str(exported[0].parent))) == 2  # what `inspect view` lists
    with Store(analysed.store_path) as store:
        frame = store.responses_frame()
        prompts = store.prompts()
    intra = pd.read_csv(analysed.run_dir / "intra_model_per_prompt.csv", dtype={"prompt_id": str})
    for path, system in zip(exported, analysed.systems):
        log = read_eval_log(str(path))
        assert log.status == "success"
        assert log.eval.model == system.model and log.eval.task == f"hivemind/{analysed.name}"
        assert log.eval.metadata["system"] == system.name
        assert [s.id for s in log.samples] == [p.id for p in prompts]
        assert log.results.total_samples == len(prompts)
        for sample, prompt in zip(log.samples, prompts):
            assert sample.input == prompt.text
            stored = frame[(frame["system_id"] == system.identity) & (frame["prompt_id"] == prompt.id)]
            texts = list(stored.sort_values("sample")["text"])
            assert [c.message.text for c in sample.output.choices] == texts
            assert [m.text for m in sample.messages] == [prompt.text, *texts]
            expected = float(intra[(intra["system"] == system.name) & (intra["prompt_id"] == prompt.id)]["intra"].iloc[0])
            score = sample.scores["intra_similarity"]
            assert score.value == round(expected, 3) and score.metadata["exact"] == pytest.approx(expected)
            assert score.answer == texts[0]            # inspect view's Answer column: the first answer


def test_scores_come_along_and_params_are_kept(exported, analysed):  # noqa: F811
    from inspect_ai.log import read_eval_log

    alpha, beta = (read_eval_log(str(p)) for p in exported)
    assert all("judge" not in (s.scores or {}) for s in alpha.samples)
    by_id = {s.id: s for s in beta.samples}
    assert by_id["q1"].scores["judge"].value == pytest.approx(4.0)
    assert by_id["q1"].scores["judge"].answer == by_id["q1"].output.choices[0].message.text
    assert by_id["q1"].scores["judge"].metadata["per_sample"] == {"0": 3.0, "2": 5.0} or \
        by_id["q1"].scores["judge"].metadata["per_sample"] == {0: 3.0, 2: 5.0}
    assert "judge" not in by_id["q2"].scores and "judge" not in by_id["q0"].scores  # no readable score
    judge = {s.name: s for s in beta.results.scores}["judge"]
    assert judge.scored_samples == 1 and judge.metrics["mean"].value == pytest.approx(4.0)
    assert beta.eval.model_generate_config.temperature == 2.0
    assert beta.eval.model_generate_config.extra_body == {"min_p": 0.1}
    assert alpha.eval.model_generate_config.top_p == 0.9


def test_cli_export_writes_to_the_run_folder(analysed, capsys):  # noqa: F811
    from hivemind import cli

    config_file = Path(analysed.results_dir).parent / "snaprun.yaml"  # written by the fixture
    assert cli.main(["export", "inspect", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 Inspect AI logs" in out and "inspect view --log-dir" in out
    assert len(list((analysed.run_dir / "inspect").glob("*.eval"))) == 2


def test_export_of_an_uncollected_run_is_a_clear_error(analysed, tmp_path):  # noqa: F811
    config = analysed.model_copy(update={"results_dir": str(tmp_path)})
    with pytest.raises(HivemindError, match="collect it first"):
        export_inspect(config)


def test_inspect_view_serves_the_logs(exported):
    """The real `inspect view` server lists both logs and serves each with its samples."""
    import json
    import shutil
    import socket
    import subprocess
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    inspect = shutil.which("inspect", path=str(Path(sys.executable).parent)) or shutil.which("inspect")
    assert inspect is not None, "the inspect command (installed with inspect-ai, dev extra) is not on PATH"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = exported[0].parent
    server = subprocess.Popen([inspect, "view", "start", "--log-dir", str(folder), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api"
    try:
        listing = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/log-files", timeout=5) as response:
                    listing = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        assert listing is not None, "inspect view did not start"
        names = sorted(entry["name"] for entry in listing["files"])
        assert [n.rsplit("/", 1)[-1] for n in names] == sorted(p.name for p in exported)
        for name in names:
            with urllib.request.urlopen(f"{base}/logs/{urllib.parse.quote(name, safe='')}", timeout=30) as response:
                log = json.load(response)
            assert log["status"] == "success" and len(log["samples"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_failed_answers_are_listed_not_shown_as_answers(analysed, tmp_path):  # noqa: F811
    from inspect_ai.log import read_eval_log

    from hivemind.store import Response

    alpha = analysed.systems[0].identity
    with Store(analysed.store_path) as store:
        store.add_response(Response(alpha, "q0", 7, None, error="400: context length exceeded"))
    path = export_inspect(analysed, out=tmp_path)[0]
    sample = {s.id: s for s in read_eval_log(str(path)).samples}["q0"]
    assert len(sample.output.choices) == 3 and sample.metadata["answers"] == 3
    assert sample.metadata["failed"] == [{"sample": 7, "error": "400: context length exceeded"}]
    assert sample.output.error == "400: context length exceeded"

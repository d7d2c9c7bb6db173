"""The answer browser: a section of report.html to read every system's answers to a prompt side by side.

The data goes into the page once, as compact JSON followed by the answer texts (NUL-separated), compressed
with zlib (deflate) and base64-encoded into a `data:` URI inside a non-executed <script> element; the page inflates it with the browser's own
`DecompressionStream` and draws one prompt at a time, so even 125,000 answers cost one string in the HTML,
not 125,000 DOM nodes. Base64 has no `<`, so no answer can close the script element (`</script>` in an
answer stays text), and every answer reaches the DOM as a text node, never as markup.

What is shown per answer: its system and sample, the quality scores of the `scores` table (per scorer; pass
or fail where the scorer has a `pass_at` gate line), "truncated" when the provider stopped at the length
limit (finish_reason "length"), the error of a failed request, near-duplicate pairs from
`near_duplicates.csv` (matched to answers by system and exact text) and the phrases of
`shared_phrases.csv` marked where they occur. Everything is read-only: the store through `Store`, the
tables from the run folder.

Texts are deduplicated (a text repeated across samples or systems is stored once) and kept in prompt
order, so the answers to one prompt, which share words and sentences, lie within deflate's 32 KB window.
Compressed data is invisible to the report's final secret scan, so the plain data is checked here first.
"""
from __future__ import annotations

import base64
import html
import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.core.secrets import ALLOW_KEY_SHAPED, find_key_shaped, hint, secret_values
from hivemind.results.scan import leak_message
from hivemind.store.run import Run

NEAR_DUPLICATES = "near_duplicates.csv"
SHARED_PHRASES = "shared_phrases.csv"
MAX_PAIRS_PER_PROMPT = 200      # most similar near-duplicate pairs highlighted per prompt (the table is sorted)
MAX_PHRASES_PER_PROMPT = 40
COMPRESSION_LEVEL = 4           # zlib, at 125k answers: 1.3 s of CPU; level 6 takes 2.1 s for 11% less
# Per answer: flags
TRUNCATED, FAILED = 1, 2


@dataclass
class PromptEntry:
    id: str
    text: str
    answers: list[list] = field(default_factory=list)   # [system index, sample, text index, flags, *scores]
    pairs: list[list] = field(default_factory=list)     # [system a, text a, system b, text b, similarity, exact]
    phrases: list[list] = field(default_factory=list)   # [phrase, [system indexes]]


@dataclass
class BrowserData:
    systems: list[str]
    scorers: list[tuple[str, float | None]]            # name, pass_at (None: no gate line)
    texts: list[str]
    prompts: list[PromptEntry]

    def to_json(self) -> str:
        """Everything but the texts, as JSON."""
        return json.dumps({"v": 1, "systems": self.systems, "scorers": self.scorers,
                           "prompts": [[p.id, p.text, p.answers, p.pairs, p.phrases] for p in self.prompts]},
                          ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def serialise(self) -> bytes:
        """The JSON, then every text, each after a NUL: no escaping, and 5x faster than JSON for 140 MB of
        texts (a NUL inside an answer, which no answer means, is shown as U+FFFD)."""
        return "\0".join([self.to_json(), *(t.replace("\0", "\ufffd") for t in self.texts)]).encode("utf-8")


# Gathering ------------------------------------------------------------------------------------------
def read_csv_as_text(path: Path) -> pd.DataFrame | None:
    """A results table with every cell as text ("NA" stays an answer); None when absent."""
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def scorer_lines(config: RunConfig, stored: list[str]) -> list[tuple[str, float | None]]:
    """Scorers with scores in the store, configured ones first, each with its gate line."""
    lines = {s.name: (float(s.pass_at) if s.pass_at is not None else None) for s in config.scorers}
    names = [n for n in lines if n in stored] + sorted(n for n in stored if n not in lines)
    return [(n, lines.get(n)) for n in names]


def gather(run: Run | RunConfig) -> BrowserData:
    config = Run.config_of(run)
    ids = [s.identity for s in config.systems]
    index = {sid: k for k, sid in enumerate(ids)}
    with Run.of(run, read_only=True) as run:
        store = run.store()
        prompts = store.prompts()
        rows = store.browsable_answers(ids)
        scores = store.scores_frame(ids)
    scorers = scorer_lines(config, sorted(set(scores["scorer"])) if len(scores) else [])
    scorer_index = {name: i for i, (name, _) in enumerate(scorers)}
    score_of: dict[tuple[str, str, int], list] = {}
    for sid, pid, sample, scorer, value in zip(scores["system_id"], scores["prompt_id"], scores["sample"],
                                               scores["scorer"], scores["score"]):
        if scorer in scorer_index and pd.notna(value):
            score_of.setdefault((sid, pid, int(sample)), [None] * len(scorers))[scorer_index[scorer]] = \
                round(float(value), 4)

    # First-appearance order keeps each prompt's answers together, inside deflate's window.
    texts = list(dict.fromkeys((text if text is not None else (error or "")) for _, _, _, text, _, error in rows))
    text_index = {t: i for i, t in enumerate(texts)}
    entries = {p.id: PromptEntry(p.id, p.text) for p in prompts}
    for sid, pid, sample, text, finish, error in rows:
        flags = (TRUNCATED if finish == "length" else 0) | (FAILED if text is None else 0)
        answer = [index[sid], int(sample), text_index[text if text is not None else (error or "")], flags]
        got = score_of.get((sid, pid, int(sample)))
        entries[pid].answers.append(answer + got if got else answer)
    names = [s.name for s in config.systems]
    add_pairs(entries, read_csv_as_text(config.run_dir / NEAR_DUPLICATES), names, text_index)
    add_phrases(entries, read_csv_as_text(config.run_dir / SHARED_PHRASES), names)
    shown = [e for e in entries.values() if e.answers]
    return BrowserData(systems=names, scorers=scorers, texts=texts, prompts=shown)


def add_pairs(entries: dict[str, PromptEntry], table: pd.DataFrame | None, names: list[str],
              text_index: dict[str, int]) -> None:
    """Near-duplicate pairs, matched to answers by system and exact text (the table has no sample)."""
    if table is None or table.empty:
        return
    system = {n: k for k, n in enumerate(names)}
    counts: dict[str, int] = {}
    for pid, a, b, sim, exact, ta, tb in zip(table["prompt_id"], table["system_a"], table["system_b"],
                                             table["similarity"], table["exact"], table["text_a"], table["text_b"]):
        entry = entries.get(pid)
        if entry is None or a not in system or b not in system or ta not in text_index or tb not in text_index:
            continue
        if counts.get(pid, 0) >= MAX_PAIRS_PER_PROMPT:
            continue
        counts[pid] = counts.get(pid, 0) + 1
        entry.pairs.append([system[a], text_index[ta], system[b], text_index[tb], round(float(sim), 3),
                            1 if str(exact).lower() in {"true", "1"} else 0])


def add_phrases(entries: dict[str, PromptEntry], table: pd.DataFrame | None, names: list[str]) -> None:
    if table is None or table.empty:
        return
    system = {n: k for k, n in enumerate(names)}
    for pid, phrase, members in zip(table["prompt_id"], table["phrase"], table["systems"]):
        entry = entries.get(pid)
        if entry is None or not phrase.strip() or len(entry.phrases) >= MAX_PHRASES_PER_PROMPT:
            continue
        entry.phrases.append([phrase, [system[m] for m in members.split(";") if m in system]])


# Checking and packing -------------------------------------------------------------------------------
# Every strict key shape (hivemind.core.secrets: a random-looking body of 16+ characters) lies inside a run of
# 16+ of these characters; an HTTP credential's scheme ("Bearer ") stands just before it.
TOKEN_BYTES = bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123)) + b"_-.~+/="
TOKEN_MAP = bytes.maketrans(TOKEN_BYTES + bytes(c for c in range(256) if c not in TOKEN_BYTES),
                            b"a" * len(TOKEN_BYTES) + b" " * (256 - len(TOKEN_BYTES)))
MIN_TOKEN, SCHEME_ROOM = 16, 64


def token_windows(blob: bytes) -> str:
    """The runs of 16+ token characters in blob, each with the 64 bytes before it, one per line.

    find_key_shaped(strict=True) on these windows finds what it finds on the whole text, at a fraction of
    the cost: prose has few such runs, and translate + find run in C (a regex over 140 MB takes ~9 s)."""
    marked = blob.translate(TOKEN_MAP)
    run, windows, at = b"a" * MIN_TOKEN, [], 0
    while (at := marked.find(run, at)) >= 0:
        end = marked.find(b" ", at)
        end = len(marked) if end < 0 else end
        windows.append(blob[max(0, at - SCHEME_ROOM):end].decode("utf-8", errors="replace"))
        at = end
    return "\n".join(windows)


def check_secrets(blob: bytes, config: RunConfig) -> None:
    """The report's final scan reads bytes; compressed answers hide from it, so their texts are scanned here:
    for the key variables' values and (unless HIVEMIND_ALLOW_KEY_SHAPED=1) for key-shaped strings."""
    hits = [f"the value of {name}" for name, value in secret_values(config).items() if value.encode() in blob]
    if os.environ.get(ALLOW_KEY_SHAPED, "") != "1":
        shapes = find_key_shaped(token_windows(blob), strict=True)
        if shapes:
            hits.append(f"a key-shaped string {hint(shapes[0])}")
    if hits:
        raise HivemindError(leak_message(f"refusing to write the answer browser of {config.run_dir / 'report.html'}",
                                         hits))


def pack(data: BrowserData, config: RunConfig) -> str:
    """The data as a data: URI of base64(zlib(serialised)), checked for secrets first."""
    blob = data.serialise()
    # zlib lets go of the GIL, so the scan runs beside the compression; a hit raises before anything is written.
    with ThreadPoolExecutor(max_workers=1) as pool:
        packed = pool.submit(zlib.compress, blob, COMPRESSION_LEVEL)
        # the prompts once more as plain text: in the JSON an escape such as \n glues its "n" to what follows
        check_secrets(blob + b"\0" + "\0".join(p.text for p in data.prompts).encode("utf-8"), config)
        return "data:application/octet-stream;base64," + base64.b64encode(packed.result()).decode("ascii")


def browser_section(run: Run | RunConfig, pair: tuple[str, str] | None = None) -> str:
    """The answer browser as one HTML section (its own style and script inline, no network).

    `pair`: open on those two systems side by side (the site's comparison page) instead of every system;
    the page can switch either way, and `#pair=A|B` in its address picks the two as well."""
    config = Run.config_of(run)
    data = gather(run)
    n_answers = sum(len(p.answers) for p in data.prompts)
    opening = ""
    if pair is not None:
        missing = [name for name in pair if name not in data.systems]
        if missing:
            raise HivemindError(f"run {config.name!r} has no system named {missing[0]!r} to compare "
                                f"(it has: {', '.join(data.systems)})")
        opening = html.escape(json.dumps(list(pair), ensure_ascii=False), quote=True)
    return (SECTION.replace("{{CSS}}", CSS).replace("{{JS}}", JS).replace("{{PAIR}}", opening)
            .replace("{{COUNTS}}", f"{len(data.systems)} systems · {len(data.prompts)} prompts · {n_answers} answers")
            .replace("{{DATA}}", pack(data, config)))


SECTION = """<section id="hm-browser" data-pair="{{PAIR}}"><h2>Answer browser</h2>
<style>{{CSS}}</style>
<p class="note">Every system's answers to one prompt side by side ({{COUNTS}}). Pick a prompt, tick the
systems to show (or two of them side by side), or search the answers' text. <span class="hm-dup-key">Outlined</span> answers have a
near duplicate from another system; <mark class="hm-phrase">marked</mark> words are phrases several systems
share; badges show quality scores (green: passes the scorer's gate line, red: fails it) and truncation.</p>
<div id="hm-status" class="note">Loading the answers…</div>
<div id="hm-controls" hidden>
 <div class="hm-row"><input id="hm-prompt-filter" type="search" placeholder="filter prompts by id or text">
  <button id="hm-prev" type="button">◀</button><select id="hm-prompt"></select>
  <button id="hm-next" type="button">▶</button></div>
 <div class="hm-row"><input id="hm-search" type="search" placeholder="search all answers (Enter)">
  <button id="hm-search-go" type="button">search</button><span id="hm-search-count" class="note"></span></div>
 <div id="hm-hits"></div>
 <div class="hm-row" id="hm-pick"><button id="hm-all" type="button">all systems</button>
  <button id="hm-none" type="button">none</button><div id="hm-systems"></div></div>
 <div class="hm-row" id="hm-pair-row"><label><input id="hm-pair-on" type="checkbox"> two systems side by side:</label>
  <select id="hm-pair-a" aria-label="left system"></select><span>vs</span>
  <select id="hm-pair-b" aria-label="right system"></select></div>
</div>
<div id="hm-prompt-text"></div><div id="hm-summary" class="note"></div>
<div id="hm-columns"></div>
<script type="text/plain" id="hm-data">{{DATA}}</script>
<script>{{JS}}</script></section>"""

CSS = """
#hm-browser .hm-row{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:6px 0}
#hm-browser .hm-row[hidden]{display:none}
#hm-browser input[type=search]{min-width:0;width:280px;max-width:100%;padding:3px 6px}
#hm-prompt{max-width:60%}
#hm-systems{display:flex;flex-wrap:wrap;gap:2px 10px;font-size:12px}
#hm-systems label{white-space:nowrap}
#hm-hits{font-size:12px;max-height:160px;overflow:auto}
#hm-hits button{display:block;text-align:left;width:100%;border:0;background:#f4f6fa;margin:1px 0;cursor:pointer}
#hm-prompt-text{background:#eef2f8;border-left:4px solid #4a6fa5;padding:8px 10px;margin:8px 0;white-space:pre-wrap}
#hm-columns{display:flex;gap:8px;overflow-x:auto;align-items:flex-start;padding-bottom:8px}
.hm-col{flex:0 0 280px;background:#fafbfc;border:1px solid #dde2ea;border-radius:4px;padding:4px}
#hm-columns.hm-pair .hm-col{flex:1 1 0;min-width:0}
#hm-pair-row select{max-width:40%}
.hm-col h3{font-size:13px;margin:2px 4px 6px;word-break:break-all}
.hm-ans{background:#fff;border:1px solid #e3e6eb;border-radius:3px;margin:0 0 6px;padding:4px 6px;font-size:12px}
.hm-ans .hm-text{white-space:pre-wrap;overflow-wrap:anywhere;max-height:14em;overflow:auto;margin-top:3px}
.hm-ans.hm-dup,.hm-dup-key{outline:2px solid #d9822b;outline-offset:-2px}
.hm-ans.hm-hit{box-shadow:0 0 0 3px #3b82f6}
.hm-badge{display:inline-block;border-radius:3px;padding:0 4px;margin:0 3px 2px 0;font-size:11px;background:#e8eaee}
.hm-pass{background:#d5f0d9;color:#14532d}.hm-fail{background:#fbd5d5;color:#7f1d1d}
.hm-trunc{background:#fde7b0;color:#6b4a00}.hm-error{background:#7f1d1d;color:#fff}
.hm-dupbadge{background:#f6d2b0;color:#6b3000}
.hm-more{width:100%;font-size:12px}
mark.hm-phrase{background:#fff2a8}mark.hm-find{background:#9fd0ff}
"""

JS = r"""
(function(){
"use strict";
const $=id=>document.getElementById(id);
const TRUNCATED=1, FAILED=2, PER_COLUMN=10;   // answers drawn per system until "show all" is clicked
let D=null, current=0, shown=null, lower=null, where=null, expanded=new Set(), lastNeedle="", lastHit=null;
let pair=null;   // [left, right] system indexes when two systems are shown side by side, else null

async function load(){
  const uri=$("hm-data").textContent.trim();
  const b64=uri.slice(uri.indexOf(",")+1), bin=atob(b64), bytes=new Uint8Array(bin.length);
  for(let i=0;i<bin.length;i++) bytes[i]=bin.charCodeAt(i);
  const stream=new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const parts=(await new Response(stream).text()).split("\0"), raw=JSON.parse(parts[0]);
  return {systems:raw.systems, scorers:raw.scorers, texts:parts.slice(1),
          prompts:raw.prompts.map(p=>({id:p[0], text:p[1], answers:p[2], pairs:p[3], phrases:p[4]}))};
}

function el(tag, cls, text){
  const e=document.createElement(tag);
  if(cls) e.className=cls;
  if(text!==undefined) e.textContent=text;
  return e;
}

// Words as hivemind.analyze.phrases.words: runs of letters and digits, an apostrophe inside a word kept, lower-cased.
const WORD=/[\p{L}\p{N}\p{M}]+(?:'[\p{L}\p{N}\p{M}]+)*/gu;
function wordSpans(text){
  const out=[]; let m; WORD.lastIndex=0;
  while((m=WORD.exec(text))!==null) out.push([m.index, m.index+m[0].length, m[0].toLowerCase()]);
  return out;
}

// Character ranges of the text covered by any of the phrases (each a list of words).
function phraseRanges(text, phrases){
  if(!phrases.length) return [];
  const w=wordSpans(text), first=new Map(), ranges=[];
  w.forEach((x,i)=>{ if(!first.has(x[2])) first.set(x[2],[]); first.get(x[2]).push(i); });
  for(const ph of phrases){
    for(const i of first.get(ph[0])||[]){
      if(i+ph.length>w.length) continue;
      let ok=true;
      for(let j=1;j<ph.length;j++) if(w[i+j][2]!==ph[j]){ok=false;break;}
      if(ok) ranges.push([w[i][0], w[i+ph.length-1][1]]);
    }
  }
  return ranges;
}

// The text as nodes: phrase ranges in <mark class=hm-phrase>, search matches in <mark class=hm-find>.
function textNodes(text, phrases, needle){
  const marks=[];
  for(const r of phraseRanges(text, phrases)) marks.push([r[0], r[1], "hm-phrase"]);
  if(needle){
    const low=text.toLowerCase(); let at=low.indexOf(needle);
    while(at>=0){ marks.push([at, at+needle.length, "hm-find"]); at=low.indexOf(needle, at+needle.length); }
  }
  marks.sort((a,b)=>a[0]-b[0]||b[1]-a[1]);
  const box=el("div","hm-text"); let pos=0;
  for(const [s,e,cls] of marks){
    if(e<=pos) continue;
    const start=Math.max(s,pos);
    if(start>pos) box.appendChild(document.createTextNode(text.slice(pos,start)));
    box.appendChild(el("mark", cls, text.slice(start,e)));
    pos=e;
  }
  if(pos<text.length) box.appendChild(document.createTextNode(text.slice(pos)));
  return box;
}

function fmt(x){ return Math.abs(x)>=100? x.toFixed(0) : Math.abs(x)>=10? x.toFixed(1) : x.toFixed(2); }

function answerCard(p, a, dupOf, needle, phrases, hit){
  const [k, sample, t, flags]=a, card=el("div","hm-ans");
  card.dataset.system=D.systems[k]; card.dataset.sample=sample;
  const head=el("div","hm-head");
  head.appendChild(el("span","hm-badge hm-sample","#"+sample));
  D.scorers.forEach(([name, line], i)=>{
    const v=a[4+i];
    if(v===null||v===undefined) return;
    const cls=line===null? "" : (v>=line? " hm-pass" : " hm-fail");
    const b=el("span","hm-badge hm-score"+cls, name+" "+fmt(v));
    b.title=line===null? name+" (no gate line)" : name+(v>=line? " passes" : " fails")+" the gate ≥ "+line;
    b.dataset.scorer=name; head.appendChild(b);
  });
  if(flags&TRUNCATED) head.appendChild(el("span","hm-badge hm-trunc","truncated"));
  if(flags&FAILED) head.appendChild(el("span","hm-badge hm-error","error"));
  const dups=dupOf.get(k+":"+t)||[];
  if(dups.length){
    card.classList.add("hm-dup");
    const seen=new Set();
    for(const [other, sim, exact] of dups){
      if(seen.has(other) || seen.size>=3) continue;
      seen.add(other);
      const b=el("span","hm-badge hm-dupbadge", (exact? "= " : "≈ ")+D.systems[other]+" "+sim.toFixed(2));
      b.title=exact? "the same text as an answer of "+D.systems[other] : "near duplicate of an answer of "+D.systems[other];
      head.appendChild(b);
    }
  }
  if(hit) card.classList.add("hm-hit");
  card.appendChild(head);
  card.appendChild(textNodes(D.texts[t], flags&FAILED? [] : phrases, needle));
  return card;
}

function show(index, needle, hit){
  if(index!==current) expanded.clear();
  current=index; lastNeedle=needle||""; lastHit=hit||null; const p=D.prompts[index];
  $("hm-prompt").value=String(index);
  $("hm-prompt-text").textContent=p.id+": "+p.text;
  const dupOf=new Map();
  const add=(k,t,other,sim,exact)=>{const key=k+":"+t; if(!dupOf.has(key)) dupOf.set(key,[]); dupOf.get(key).push([other,sim,exact]);};
  for(const [ka,ta,kb,tb,sim,exact] of p.pairs){ add(ka,ta,kb,sim,exact); add(kb,tb,ka,sim,exact); }
  const phrases=p.phrases.map(x=>x[0].split(" "));
  const cols=$("hm-columns"); cols.textContent=""; cols.classList.toggle("hm-pair", pair!==null);
  const bySystem=D.systems.map(()=>[]);
  for(const a of p.answers) bySystem[a[0]].push(a);
  let visible=0;
  const all=D.systems.map((_,k)=>k), order=pair? [...pair, ...all.filter(k=>!pair.includes(k))] : all;
  for(const k of order){
    const name=D.systems[k];
    if(!bySystem[k].length && !(pair && pair.includes(k))) continue;   // a compared system shows its empty column
    const col=el("div","hm-col"); col.dataset.system=name;
    col.appendChild(el("h3","",name+" ("+bySystem[k].length+")"));
    cols.appendChild(col);
    if(!isShown(k)){ col.hidden=true; continue; }     // a hidden system's answers are not drawn at all
    visible++;
    const answers=bySystem[k], isHit=a=>hit&&hit[0]===k&&hit[1]===a[1];
    if(answers.findIndex(isHit)>=PER_COLUMN) expanded.add(k);
    const limit=expanded.has(k)? answers.length : PER_COLUMN;
    for(const a of answers.slice(0,limit)) col.appendChild(answerCard(p, a, dupOf, needle, phrases, isHit(a)));
    if(answers.length>limit){
      const more=el("button","hm-more","show all "+answers.length+" answers");
      more.type="button";
      more.addEventListener("click",()=>{ expanded.add(k); show(current, lastNeedle, lastHit); });
      col.appendChild(more);
    }
  }
  if(pair){
    const between=p.pairs.filter(x=>(x[0]===pair[0]&&x[2]===pair[1])||(x[0]===pair[1]&&x[2]===pair[0])).length;
    $("hm-summary").textContent=D.systems[pair[0]]+" vs "+D.systems[pair[1]]+": "+between+" near-duplicate pair"+
      (between===1?"":"s")+" between them on this prompt · "+p.phrases.length+" shared phrases";
  } else {
    $("hm-summary").textContent=p.answers.length+" answers from "+bySystem.filter(x=>x.length).length+" systems ("+
      visible+" shown) · "+p.pairs.length+" near-duplicate pairs · "+p.phrases.length+" shared phrases";
  }
  const target=cols.querySelector(".hm-hit");
  if(target) target.scrollIntoView({block:"nearest", inline:"center"});
}

function fillPrompts(){
  const q=$("hm-prompt-filter").value.trim().toLowerCase(), sel=$("hm-prompt");
  sel.textContent="";
  D.prompts.forEach((p,i)=>{
    if(q && !(p.id.toLowerCase().includes(q) || p.text.toLowerCase().includes(q))) return;
    const o=el("option","",p.id+" — "+(p.text.length>90? p.text.slice(0,90)+"…" : p.text));
    o.value=String(i); sel.appendChild(o);
  });
  if(sel.options.length && ![...sel.options].some(o=>o.value===String(current))) show(Number(sel.options[0].value));
  else sel.value=String(current);
}

function search(){
  const needle=$("hm-search").value.trim().toLowerCase(), box=$("hm-hits");
  box.textContent="";
  if(!needle){ $("hm-search-count").textContent=""; show(current); return; }
  if(!lower) lower=D.texts.map(t=>t.toLowerCase());
  if(!where){   // text index -> [prompt, system, sample] of every answer with that text
    where=D.texts.map(()=>[]);
    D.prompts.forEach((p,i)=>{ for(const a of p.answers) where[a[2]].push([i,a[0],a[1]]); });
  }
  const hits=[];
  lower.forEach((t,i)=>{ if(t.includes(needle)) for(const w of where[i]) hits.push([w, i]); });
  hits.sort((x,y)=>x[0][0]-y[0][0]||x[0][1]-y[0][1]||x[0][2]-y[0][2]);
  $("hm-search-count").textContent=hits.length+" answer"+(hits.length===1?"":"s")+" found"+(hits.length>100? " (first 100 listed)" : "");
  for(const [[pi,k,sample], t] of hits.slice(0,100)){
    const at=lower[t].indexOf(needle), text=D.texts[t];
    const b=el("button","hm-hit-item",D.prompts[pi].id+" · "+D.systems[k]+" #"+sample+": …"+text.slice(Math.max(0,at-40), at+needle.length+60)+"…");
    b.type="button"; b.dataset.prompt=D.prompts[pi].id;
    b.addEventListener("click",()=>{ reveal(k); show(pi, needle, [k,sample]); });
    box.appendChild(b);
  }
  if(hits.length){ const [[pi,k,sample]]=hits[0]; reveal(k); show(pi, needle, [k,sample]); }
}

function syncBoxes(){ document.querySelectorAll("#hm-systems input").forEach(b=>{ b.checked=shown[Number(b.dataset.index)]; }); }

function isShown(k){ return pair? pair.includes(k) : shown[k]; }

// A search hit's system is made visible: ticked, or in place of the right-hand system of a pair.
function reveal(k){
  if(isShown(k)) return;
  if(pair){ setPair(pair[0], k); return; }
  shown[k]=true; syncBoxes();
}

// Two systems side by side (left, right), or every ticked system (null); kept in the address as #pair=A|B.
function setPair(a, b){
  pair=(a===null)? null : [a, b===a? (a+1)%D.systems.length : b];
  $("hm-pair-on").checked=pair!==null;
  $("hm-pick").hidden=pair!==null;
  if(pair){ $("hm-pair-a").value=String(pair[0]); $("hm-pair-b").value=String(pair[1]); }
  const url=pair? "#pair="+pair.map(k=>encodeURIComponent(D.systems[k])).join("|") : location.pathname+location.search;
  try { history.replaceState(null, "", url); } catch(e) {}      // a page opened from file: may refuse
}

// The pair to open on: #pair=A|B in the address, else the section's data-pair, else none.
function openingPair(){
  let names=null;
  const m=/^#pair=([^|]*)\|(.*)$/.exec(location.hash);
  if(m) names=[decodeURIComponent(m[1]), decodeURIComponent(m[2])];
  else if($("hm-browser").dataset.pair) names=JSON.parse($("hm-browser").dataset.pair);
  const ks=names? names.map(n=>D.systems.indexOf(n)) : [];
  return ks.length===2 && ks[0]>=0 && ks[1]>=0 && ks[0]!==ks[1]? ks : null;
}

function setupPair(){
  if(D.systems.length<2){ $("hm-pair-row").hidden=true; return; }
  for(const id of ["hm-pair-a","hm-pair-b"]){
    D.systems.forEach((name,k)=>{ const o=el("option","",name); o.value=String(k); $(id).appendChild(o); });
  }
  $("hm-pair-a").value="0"; $("hm-pair-b").value="1";
  const redraw=()=>{ expanded.clear(); show(current, lastNeedle, lastHit); };
  $("hm-pair-on").addEventListener("change",e=>{
    setPair(e.target.checked? Number($("hm-pair-a").value) : null, Number($("hm-pair-b").value)); redraw(); });
  $("hm-pair-a").addEventListener("change",e=>{ setPair(Number(e.target.value), Number($("hm-pair-b").value)); redraw(); });
  $("hm-pair-b").addEventListener("change",e=>{
    const a=Number($("hm-pair-a").value), b=Number(e.target.value);
    setPair(b===a? (a+1)%D.systems.length : a, b); redraw(); });
  const opening=openingPair();
  if(opening) setPair(opening[0], opening[1]);
}

function setup(){
  shown=D.systems.map(()=>true);
  const boxes=$("hm-systems");
  D.systems.forEach((name,k)=>{
    const label=el("label"), box=el("input");
    box.type="checkbox"; box.checked=true; box.dataset.index=k; box.dataset.system=name;
    box.addEventListener("change",()=>{ shown[k]=box.checked; show(current, lastNeedle, lastHit); });
    label.appendChild(box); label.appendChild(document.createTextNode(" "+name)); boxes.appendChild(label);
  });
  $("hm-all").addEventListener("click",()=>{ shown.fill(true); syncBoxes(); show(current, lastNeedle, lastHit); });
  $("hm-none").addEventListener("click",()=>{ shown.fill(false); syncBoxes(); show(current, lastNeedle, lastHit); });
  $("hm-prompt").addEventListener("change",e=>show(Number(e.target.value)));
  $("hm-prompt-filter").addEventListener("input",fillPrompts);
  const step=d=>{ const o=[...$("hm-prompt").options].map(x=>Number(x.value)), i=o.indexOf(current);
                  if(o.length) show(o[Math.min(o.length-1, Math.max(0, i+d))]); };
  $("hm-prev").addEventListener("click",()=>step(-1));
  $("hm-next").addEventListener("click",()=>step(1));
  $("hm-search").addEventListener("keydown",e=>{ if(e.key==="Enter") search(); });
  $("hm-search-go").addEventListener("click",search);
  setupPair();
  fillPrompts();
  $("hm-controls").hidden=false;
}

load().then(data=>{
  D=data;
  if(!D.prompts.length){ $("hm-status").textContent="No answers stored."; return; }
  $("hm-status").textContent="";
  setup(); show(0);
  document.getElementById("hm-browser").dataset.ready="1";
}).catch(err=>{ $("hm-status").textContent="Could not read the answers: "+err; });
})();
"""

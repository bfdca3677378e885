"""The Domain-Preserving Function (§4.3, Appendix A.2, Table 3): rank candidate experts for a domain.

Steps, as the paper runs them: (i) domain questions with reference answers, held out from training
(the suite's validation records: never trained on); (ii) each candidate answers (greedy, through the
one generation path, the training prompt format); (iii) a judge scores every answer on Accuracy,
Domain Coverage, Depth and Terminology Appropriateness, 0-5 each, total 0-20; (iv) the candidates
with the highest mean total are selected (top-k).

Judges, by name:

- ``openai:<model>`` (the paper: ``openai:gpt-4o``): any OpenAI-compatible endpoint through the
  ``openai`` package, base URL from ``OPENAI_BASE_URL`` (or the ``base_url`` argument) and key from
  ``OPENAI_API_KEY`` (never written anywhere), with the paper's prompt verbatim (all candidates of a
  question in one request). Rate limits (honouring Retry-After), timeouts, connection errors and 5xx
  are retried with exponential back-off; a reply whose score lines cannot be parsed strictly is
  recorded as unparseable with its text, never as a zero. Replies are cached by (model, prompt).
- ``reference`` (offline): ROUGE-L F1 of the answer against the reference (code tokenizer), × 20.
- ``loss`` (offline): the candidate's bits per byte of the reference answers (lower is better; the
  score is its negative), which needs no generation at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from filelock import FileLock

from harness.io import atomic_write_json, read_json
from harness.paths import cache_dir

CRITERIA = ("Accuracy", "Domain Coverage", "Depth", "Terminology Appropriateness")
DOMAINS = {"code": "Code (Python programming)", "math": "Mathematics"}
PROMPT = """Please evaluate the following model responses in the specified domain. Score each dimension from 0 to 5 for each candidate response, with the total score being the sum (minimum 0), and provide brief reasoning. For each candidate, start with: "Accuracy: x, Domain Coverage: x, Depth: x, Terminology Appropriateness: x, Total Score: x". Evaluate each candidate response based on the question, the reference answer, and the standards of the specified domain.
1. Accuracy:
- Does the prediction correctly answer the core question?
- Are there any errors or misunderstandings of key information?
- Deduct points for incorrect facts, wrong logic, or misleading statements.
2. Domain Coverage:
- Does the prediction cover all key subdomains from the reference answer?
- Deduct points for missing important content.
- Consider whether the response addresses the main components, steps, or aspects required by the question and reference.
3. Depth:
- Does the prediction provide detailed reasoning, explanation, and insight?
- Deduct points for shallow or superficial answers.
- Higher scores should be given to responses that explain not only what the answer is, but also why.
4. Terminology Appropriateness:
- Are domain-specific terms used correctly and consistently in the specified domain?
- Deduct points for incorrect or missing terminology.
- Consider whether the terminology is precise and appropriate for the domain.
Keep the evaluation concise, strict, and evidence-based. Minor wording differences should not be penalized if the meaning is correct. Evaluate each candidate independently based on the same standard.
Domain: {domain}
Question: {question}
Candidate Model Responses:
{candidates}
Reference: {ground_truth}"""
_NUMBER = r"(\d+(?:\.\d+)?)"
SCORE_LINE = re.compile(r"Accuracy:\s*{n}\s*,\s*Domain Coverage:\s*{n}\s*,\s*Depth:\s*{n}\s*,\s*"
                        r"Terminology Appropriateness:\s*{n}\s*,\s*Total Score:\s*{n}".replace("{n}", _NUMBER))


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    reference: str


@dataclass
class Judgment:
    """One candidate's scores on one question (``scores`` None: unparseable or failed, see ``error``)."""

    scores: dict[str, float] | None
    total: float | None
    error: str | None = None


def build_prompt(domain: str, question: Question, answers: Sequence[tuple[str, str]]) -> str:
    candidates = "\n".join(f"- {name}: {answer}" for name, answer in answers)
    return PROMPT.format(domain=domain, question=question.question, candidates=candidates,
                         ground_truth=question.reference)


def parse_reply(reply: str, n_candidates: int) -> list[Judgment]:
    """Strict parsing: exactly one "Accuracy: x, ..., Total Score: x" line per candidate, in order,
    each criterion 0-5 and the total their sum; anything else marks every candidate unparseable."""
    lines = SCORE_LINE.findall(reply or "")
    if len(lines) != n_candidates:
        error = f"unparseable: {len(lines)} score lines for {n_candidates} candidates"
        return [Judgment(None, None, error) for _ in range(n_candidates)]
    out = []
    for values in lines:
        numbers = [float(v) for v in values]
        criteria, total = numbers[:4], numbers[4]
        if any(not 0 <= v <= 5 for v in criteria):
            out.append(Judgment(None, None, f"unparseable: a criterion outside 0-5 ({criteria})"))
        elif abs(sum(criteria) - total) > 1e-6:
            out.append(Judgment(None, None, f"unparseable: total {total} is not the sum {sum(criteria)}"))
        else:
            out.append(Judgment(dict(zip(CRITERIA, criteria)), total))
    return out


class OpenAIJudge:
    """The paper's judge (GPT-4o by default) through the ``openai`` client, with retries and a cache."""

    def __init__(self, model: str = "gpt-4o", *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 60.0, max_attempts: int = 6, backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, cache: bool = True):
        self.model, self.timeout_s, self.max_attempts, self.backoff_s = model, timeout_s, max_attempts, backoff_s
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.sleep, self.cache = sleep, cache
        self.attempts = 0  # requests sent (for reports and tests)

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def check(self) -> None:
        if not self._api_key:
            from harness.config import ConfigError

            raise ConfigError(f"the DPF judge {self.name} needs a key: set OPENAI_API_KEY (and OPENAI_BASE_URL for "
                              "another OpenAI-compatible endpoint; the key is never written anywhere), or use "
                              "pen2sword.dpf_judge=loss / reference offline")

    def _client(self):
        import openai

        self.check()
        return openai.OpenAI(api_key=self._api_key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0)

    def _cache_path(self, prompt: str):
        key = hashlib.sha256(json.dumps([self.model, self.base_url or "", prompt]).encode()).hexdigest()[:24]
        return cache_dir() / "dpf" / "judgments" / f"{key}.json"

    def ask(self, prompt: str) -> tuple[str | None, str | None]:
        """(reply text, error): retried on rate limits, timeouts, connection errors and 5xx."""
        import openai

        path = self._cache_path(prompt)
        if self.cache and path.exists():
            return read_json(path)["reply"], None
        client, error = self._client(), None
        for attempt in range(self.max_attempts):
            self.attempts += 1
            try:
                response = client.chat.completions.create(
                    model=self.model, temperature=0, messages=[{"role": "user", "content": prompt}])
                reply = response.choices[0].message.content
                if not isinstance(reply, str):
                    return None, "malformed reply: no message content"
                if self.cache:
                    atomic_write_json(path, {"model": self.model, "reply": reply})
                return reply, None
            except openai.RateLimitError as err:
                error, wait = f"rate limited (429): {err}", _retry_after(err)
            except (openai.APITimeoutError, openai.APIConnectionError) as err:
                error, wait = f"{type(err).__name__}: {err}", None
            except openai.InternalServerError as err:
                error, wait = f"server error ({err.status_code}): {err}", None
            except openai.APIStatusError as err:  # 4xx other than 429: retrying will not help
                return None, f"request refused ({err.status_code}): {err}"
            except (KeyError, IndexError, AttributeError, TypeError, ValueError) as err:
                return None, f"malformed reply: {type(err).__name__}: {err}"
            if attempt + 1 < self.max_attempts:
                self.sleep(wait if wait is not None else self.backoff_s * 2 ** attempt)
        return None, f"gave up after {self.max_attempts} attempts: {error}"

    def judge(self, domain: str, questions: Sequence[Question], answers: dict[str, list[str]], **_) -> dict[str, list[Judgment]]:
        names = list(answers)
        labels = [f"Model {chr(ord('A') + i)}" for i in range(len(names))]  # names would bias the judge
        out: dict[str, list[Judgment]] = {name: [] for name in names}
        for q, question in enumerate(questions):
            reply, error = self.ask(build_prompt(domain, question, [(lab, answers[n][q]) for lab, n in zip(labels, names)]))
            judgments = parse_reply(reply, len(names)) if reply is not None else [Judgment(None, None, error)] * len(names)
            for name, judgment in zip(names, judgments):
                if judgment.error and reply is not None:
                    judgment.error += f"; reply: {reply[:300]!r}"
                out[name].append(judgment)
        return out


def _retry_after(err) -> float | None:
    try:
        value = err.response.headers.get("retry-after")
        return max(float(value), 0.0) if value is not None else None
    except (AttributeError, ValueError, TypeError):
        return None


class ReferenceJudge:
    """Offline: 20 × ROUGE-L F1 of each answer against the reference (the code ROUGE tokenizer)."""

    name = "reference"

    def judge(self, domain: str, questions: Sequence[Question], answers: dict[str, list[str]], **_) -> dict[str, list[Judgment]]:
        from harness.engine.validation import make_scorer

        scorer = make_scorer("code")
        return {name: [Judgment({"ROUGE-L F1": f}, 20.0 * f)
                       for f in (scorer.score(q.reference, a)["rougeL"].fmeasure for q, a in zip(questions, texts))]
                for name, texts in answers.items()}


class LossJudge:
    """Offline: minus each candidate's bits per byte of the reference answers (no generation needed)."""

    name = "loss"
    needs_answers = False

    def judge(self, domain: str, questions: Sequence[Question], answers: dict[str, list[str]], *,
              score_references=None, **_) -> dict[str, list[Judgment]]:
        return {name: [Judgment({"bits_per_byte": bpb}, -bpb) for bpb in score_references(name)] for name in answers}


def make_judge(spec: str, **kwargs):
    """``openai:<model>`` | ``reference`` | ``loss``."""
    if spec.startswith("openai:"):
        return OpenAIJudge(spec.split(":", 1)[1] or "gpt-4o", **kwargs)
    if spec == "reference":
        return ReferenceJudge()
    if spec == "loss":
        return LossJudge()
    raise ValueError(f"unknown DPF judge {spec!r}: use openai:<model> (e.g. openai:gpt-4o), reference or loss")


@dataclass
class Ranking:
    """Table 3: per candidate, the mean of each criterion and of the total over the questions."""

    suite: str
    domain: str
    judge: str
    n_questions: int
    rows: list[dict] = field(default_factory=list)  # sorted best first: {"candidate", "total", criteria, "n_scored", "unparseable"}
    top_k: int = 1

    @property
    def selected(self) -> list[str]:
        return [r["candidate"] for r in self.rows[: self.top_k] if r["total"] is not None]

    def to_dict(self) -> dict:
        return {**asdict(self), "selected": self.selected}


def rank(suite: str, judge, questions: Sequence[Question], answers: dict[str, list[str]], *, top_k: int = 1,
         score_references=None) -> tuple[Ranking, dict[str, list[Judgment]]]:
    domain = DOMAINS.get(suite, suite)
    judged = judge.judge(domain, questions, answers, score_references=score_references)
    rows = []
    for name, judgments in judged.items():
        ok = [j for j in judgments if j.scores is not None]
        row: dict = {"candidate": name, "n_scored": len(ok), "unparseable": len(judgments) - len(ok),
                     "total": sum(j.total for j in ok) / len(ok) if ok else None}
        for criterion in (ok[0].scores if ok else {}):
            row[criterion] = sum(j.scores[criterion] for j in ok) / len(ok)
        rows.append(row)
    rows.sort(key=lambda r: (r["total"] is None, -(r["total"] or 0.0), r["candidate"]))
    return Ranking(suite, domain, judge.name, len(questions), rows, top_k), judged


# --- running it on the configured candidates ------------------------------------------------------

def domain_questions(config, suite, n: int) -> list[Question]:
    """The first ``n`` validation records of the suite: held out from training by construction."""
    from harness.data import load_dataset, train_validation_split

    records = load_dataset(suite.train_dataset, config.data.source)
    split = train_validation_split(records, config.data.n_validation, config.data.split_seed)
    if n > len(split.validation):
        raise ValueError(f"DPF asks for {n} questions but the validation split has {len(split.validation)}; "
                         "lower pen2sword.dpf_questions or raise data.n_validation")
    return [Question(r["id"], r["instruction"], r["response"]) for r in split.validation[:n]]


def ranking_path(config, suite, judge_spec: str, questions: Sequence[Question], resolved: dict, top_k: int):
    """Where a ranking is cached: keyed by suite, judge, candidates' identities, questions and decoding."""
    from harness.data import records_hash

    payload = {"suite": suite.name, "judge": judge_spec, "top_k": top_k,
               "candidates": {n: r.identity for n, r in resolved.items()},
               "questions": records_hash([asdict(q) for q in questions]),
               "max_new_tokens": config.eval.max_new_tokens, "max_prompt_tokens": config.data.max_prompt_tokens}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_dir() / "dpf" / "rankings" / f"{key}.json"


def cached_ranking(config, suite, *, top_k: int = 1) -> Ranking | None:
    """The cached ranking the configured DPF would produce, or None (nothing is built or loaded)."""
    from harness import models
    from harness.models import ModelUnavailableError

    try:
        resolved = {name: models.resolve_model(name, scale=config.scale, build=False)
                    for name in config.pen2sword.candidates}
    except ModelUnavailableError:
        return None  # a candidate not built yet: it was never ranked on this machine
    questions = domain_questions(config, suite, config.pen2sword.dpf_questions)
    path = ranking_path(config, suite, config.pen2sword.dpf_judge, questions, resolved, top_k)
    return Ranking(**{k: v for k, v in read_json(path).items() if k != "selected"}) if path.exists() else None


def run_dpf(config, suite, *, judge: str | None = None, n_questions: int | None = None, top_k: int = 1,
            progress: bool = True, use_cache: bool = True, say: Callable[[str], None] = lambda m: None,
            judge_kwargs: dict | None = None) -> Ranking:
    """Rank ``config.pen2sword.candidates`` for ``suite`` (cached by candidates, judge, questions, decoding)."""
    from harness import models

    judge_spec = judge or config.pen2sword.dpf_judge
    judge_obj = make_judge(judge_spec, **(judge_kwargs or {}))
    if isinstance(judge_obj, OpenAIJudge):
        judge_obj.check()  # before any candidate is loaded: a missing key is said now, not after the answers
    questions = domain_questions(config, suite, n_questions or config.pen2sword.dpf_questions)
    resolved = {name: models.resolve_model(name, scale=config.scale, build=True) for name in config.pen2sword.candidates}
    path = ranking_path(config, suite, judge_spec, questions, resolved, top_k)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # one ranking per key, even when several jobs need it at once
        if use_cache and path.exists():
            return Ranking(**{k: v for k, v in read_json(path).items() if k != "selected"})
        return _rank_candidates(config, suite, judge_obj, questions, resolved, path, top_k, say)


def _rank_candidates(config, suite, judge_obj, questions, resolved: dict, path: Path, top_k: int, say) -> Ranking:
    """:func:`run_dpf`'s work on a cache miss: each candidate answers (or is scored on the references), the judge
    ranks them, and the ranking and the judgments are written to ``path``."""
    from harness import models
    from harness.data.batches import encode_prompt
    from harness.engine.validation import generate_responses

    answers: dict[str, list[str]] = {}
    bits: dict[str, list[float]] = {}
    for name, ref in resolved.items():
        say(f"DPF: {name} answers {len(questions)} {suite.name} questions")
        model, tokenizer = models.load_model(ref).eval(), models.load_tokenizer(ref)
        if getattr(judge_obj, "needs_answers", True):
            answers[name] = generate_responses(model, tokenizer, [q.question for q in questions],
                                               max_new_tokens=config.eval.max_new_tokens,
                                               batch_size=config.eval.generation_batch_size
                                               or config.eval.eval_batch_size,
                                               max_prompt_tokens=config.data.max_prompt_tokens)
        else:
            from harness.engine.loglik import continuation_logliks

            answers[name] = [""] * len(questions)
            contexts = [tokenizer.decode(encode_prompt(tokenizer, q.question, config.data.max_prompt_tokens),
                                         skip_special_tokens=True) for q in questions]
            scores = continuation_logliks(model, tokenizer, [(c, q.reference) for c, q in zip(contexts, questions)],
                                          batch_size=config.eval.eval_batch_size)
            bits[name] = [s.bits_per_byte for s in scores]
        del model
    ranking, judged = rank(suite.name, judge_obj, questions, answers, top_k=top_k,
                           score_references=lambda name: bits[name])
    atomic_write_json(path, ranking.to_dict())
    atomic_write_json(path.with_suffix(".judgments.json"),
                      {name: [asdict(j) for j in js] for name, js in judged.items()})
    return ranking


def format_ranking(ranking: Ranking) -> str:
    """Table 3 as text: one row per candidate, best first."""
    criteria = [c for c in (*CRITERIA, "ROUGE-L F1", "bits_per_byte") if any(c in r for r in ranking.rows)]
    head = f"{'candidate':24s} " + " ".join(f"{c[:12]:>12s}" for c in criteria) + f" {'total':>8s}  scored"
    lines = [f"DPF ranking for {ranking.domain} ({ranking.judge}, {ranking.n_questions} questions)", head]
    for row in ranking.rows:
        cells = " ".join(f"{row.get(c, float('nan')):12.3f}" for c in criteria)
        total = "n/a" if row["total"] is None else f"{row['total']:.3f}"
        mark = " *" if row["candidate"] in ranking.selected else ""
        lines.append(f"{row['candidate']:24s} {cells} {total:>8s}  {row['n_scored']}/{ranking.n_questions}{mark}")
    lines.append(f"selected (top {ranking.top_k}): {', '.join(ranking.selected) or 'none'}")
    return "\n".join(lines)

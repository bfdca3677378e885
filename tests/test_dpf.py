"""The Domain-Preserving Function: strict parsing of the judge, the real openai client against a
loopback server (rate limit, 5xx, timeout, malformed and correct replies), offline judges on nano."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from methods.pen2sword import dpf

GOOD = ("Model A\nAccuracy: 4, Domain Coverage: 3, Depth: 3, Terminology Appropriateness: 5, Total Score: 15\n"
        "Short reasoning.\nModel B\nAccuracy: 1, Domain Coverage: 1, Depth: 0, Terminology Appropriateness: 2, "
        "Total Score: 4\nIt misses the point.")
QUESTION = dpf.Question("q1", "Reverse a list in Python.", "Use lst[::-1].")


def test_parse_reply_is_strict():
    a, b = dpf.parse_reply(GOOD, 2)
    assert a.scores == {"Accuracy": 4, "Domain Coverage": 3, "Depth": 3, "Terminology Appropriateness": 5}
    assert (a.total, b.total) == (15, 4) and a.error is None
    assert all(j.scores is None and "2 score lines for 3" in j.error for j in dpf.parse_reply(GOOD, 3))
    assert dpf.parse_reply(GOOD.replace("Total Score: 15", "Total Score: 16"), 2)[0].error.startswith("unparseable: total")
    assert "outside 0-5" in dpf.parse_reply(GOOD.replace("Accuracy: 4", "Accuracy: 7").replace("15", "18"), 2)[0].error
    assert dpf.parse_reply("I refuse.", 1)[0].scores is None


def test_prompt_is_the_papers_verbatim():
    prompt = dpf.build_prompt("Code", QUESTION, [("Model A", "lst.reverse()"), ("Model B", "sorted(lst)")])
    assert prompt.startswith("Please evaluate the following model responses in the specified domain.")
    assert "Domain: Code\nQuestion: Reverse a list in Python.\nCandidate Model Responses:\n- Model A: lst.reverse()\n" \
           "- Model B: sorted(lst)\nReference: Use lst[::-1]." in prompt
    assert '"Accuracy: x, Domain Coverage: x, Depth: x, Terminology Appropriateness: x, Total Score: x"' in prompt


class Scripted:
    """A loopback OpenAI-compatible server answering from a script, one entry per request."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                kind, value = outer.script.pop(0) if outer.script else ("reply", GOOD)
                if kind == "sleep":
                    time.sleep(value)
                    kind, value = "reply", GOOD
                if kind == "status":
                    self.send_response(value)
                    self.send_header("Content-Type", "application/json")
                    if value == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": f"status {value}"}}).encode())
                    return
                payload = value if kind == "raw" else {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": value}}]}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # the timed-out client hung up: expected
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def serve():
    servers = []

    def start(script):
        servers.append(Scripted(script))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


def judge_for(server, tmp_path, monkeypatch, **kwargs):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    sleeps = []
    judge = dpf.OpenAIJudge("gpt-4o", base_url=server.base_url, api_key="sk-test-secret", timeout_s=0.5,
                            sleep=sleeps.append, **kwargs)
    return judge, sleeps


def test_openai_judge_retries_rate_limits_5xx_and_timeouts(serve, tmp_path, monkeypatch):
    server = serve([("status", 429), ("status", 500), ("sleep", 2.0), ("reply", GOOD)])
    judge, sleeps = judge_for(server, tmp_path, monkeypatch, backoff_s=0.25)
    scores = judge.judge("Code", [QUESTION], {"code-expert": ["lst[::-1]"], "chat-expert": ["no idea"]})
    assert scores["code-expert"][0].total == 15 and scores["chat-expert"][0].total == 4
    assert judge.attempts == 4 and sleeps == [0.0, 0.5, 1.0]  # Retry-After honoured, then back-off doubling
    assert server.requests[-1]["body"]["model"] == "gpt-4o" and server.requests[-1]["auth"] == "Bearer sk-test-secret"
    assert "- Model A: lst[::-1]" in server.requests[-1]["body"]["messages"][0]["content"]  # names never shown
    # Cached: the same question asks nothing new, and the key is written nowhere.
    judge.judge("Code", [QUESTION], {"code-expert": ["lst[::-1]"], "chat-expert": ["no idea"]})
    assert judge.attempts == 4
    assert not any("sk-test-secret" in p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_openai_judge_records_malformed_and_unparseable_replies(serve, tmp_path, monkeypatch):
    server = serve([("raw", {"choices": []}), ("reply", "Both are fine, 5/5.")])
    judge, _ = judge_for(server, tmp_path, monkeypatch, max_attempts=2)
    first = judge.judge("Code", [QUESTION], {"a": ["x"], "b": ["y"]})
    assert first["a"][0].scores is None and first["a"][0].error.startswith("malformed reply")
    second = judge.judge(dpf.DOMAINS["code"], [dpf.Question("q2", "Other?", "ref")], {"a": ["x"], "b": ["y"]})
    assert second["a"][0].scores is None and "unparseable" in second["a"][0].error and "5/5" in second["a"][0].error
    ranking, _ = dpf.rank("code", judge, [dpf.Question("q2", "Other?", "ref")], {"a": ["x"], "b": ["y"]})
    assert judge.attempts == 2  # the unparseable reply was cached as received
    assert all(row["total"] is None and row["unparseable"] == 1 for row in ranking.rows) and ranking.selected == []


def test_openai_judge_gives_up_with_the_reason(serve, tmp_path, monkeypatch):
    server = serve([("status", 503)] * 3)
    judge, sleeps = judge_for(server, tmp_path, monkeypatch, max_attempts=3)
    reply, error = judge.ask("prompt")
    assert reply is None and error.startswith("gave up after 3 attempts: server error (503)") and len(sleeps) == 2
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):  # ConfigError is a ValueError
        dpf.OpenAIJudge("gpt-4o", base_url=server.base_url, cache=False).ask("x")


@pytest.mark.usefixtures("data_cache")
def test_offline_dpf_ranks_the_candidates_and_selects_for_pen2sword(nano_zoo, capsys, tmp_path):
    from harness.cli import main
    from harness.config import resolve_config
    from harness.registry import SUITES
    from methods.pen2sword.method import choose_expert

    config = resolve_config(given={"suite": "code", "scale": "nano"},
                            overrides=["pen2sword.select=dpf", "pen2sword.dpf_questions=4"])
    ranking = dpf.run_dpf(config, SUITES.get("code"), judge="loss")
    assert [r["candidate"] for r in ranking.rows] and len(ranking.rows) == len(config.pen2sword.candidates)
    bits = [-r["total"] for r in ranking.rows]
    assert bits == sorted(bits) and all(r["bits_per_byte"] == b for r, b in zip(ranking.rows, bits))
    assert choose_expert(config, SUITES.get("code")) == (ranking.selected[0], choose_expert(config, SUITES.get("code"))[1])
    reference = dpf.run_dpf(config, SUITES.get("code"), judge="reference", top_k=2)
    assert len(reference.selected) == 2 and all(0 <= r["total"] <= 20 for r in reference.rows)
    results = tmp_path / "results"
    assert main(["dpf", "--suite", "code", "--scale", "nano", "--judge", "loss", "--n", "4", "--json",
                 "--results-dir", str(results)]) == 0
    assert json.loads(capsys.readouterr().out)["selected"] == ranking.selected  # the cached ranking
    # Table 3 is rendered from the written ranking, the paper's scores beside ours.
    assert main(["report", "--only", "table3", "--scale", "nano", "--results-dir", str(results),
                 "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "report.md").read_text()
    assert "judge loss, 4 questions" in table and "| code-expert | CodeLlama-7B |" in table
    assert "[paper" in table and "DPF ranks the paper's top candidate first" in table


@pytest.mark.usefixtures("data_cache")
def test_dpf_selection_is_deferred_to_the_run_and_timed(nano_zoo, tmp_path):
    from harness.config import resolve_config
    from harness.engine.run import execute
    from harness.io import read_json
    from harness.method import method_overrides
    from harness.engine.plan import format_plan, plan_run

    config = resolve_config(given={"method": "pen2sword", "suite": "code", "scale": "nano"},
                            overrides=["pen2sword.select=dpf", "pen2sword.dpf_questions=3", "training.max_steps=2",
                                       "training.eval_every=2", "training.checkpoint_steps=[2]", "eval.benchmarks=false"],
                            method_overrides_for=method_overrides)
    plan = plan_run(config, tmp_path)  # cheap: nothing is ranked while planning
    assert [s["role"] for s in plan.selections] == ["expert"] and "expert" not in plan.models
    assert {f"candidate:{c}" for c in config.pen2sword.candidates} <= set(plan.models)
    assert "chosen by DPF (loss) among" in format_plan(plan)
    run = execute(plan, progress=False)
    assert run.is_completed(), run.status()
    chosen = read_json(run.path / "prepare.json")
    assert chosen["expert_chosen_by"].startswith("DPF (loss, 3 questions)")
    assert "selection" in run.status()["phase_seconds"]
    again = plan_run(config, tmp_path)  # ranked now: planned like a fixed expert
    assert again.selections == [] and again.models["expert"].name == chosen["expert"]

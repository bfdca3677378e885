import subprocess
from pathlib import Path

import harness
from harness.provenance import code_version, collect


def test_fields_present():
    prov = collect(seed=3, datasets={"humaneval": "abc"}, models={"target": {"name": "t"}}, argv=["x"])
    assert prov["seed"] == 3 and prov["argv"] == ["x"]
    assert prov["datasets"] == {"humaneval": "abc"} and prov["models"]["target"]["name"] == "t"
    assert prov["packages"]["torch"].startswith("2.13.0")
    assert prov["packages"]["transformers"] == "5.23.0"
    hw = prov["hardware"]
    assert hw["cpu_count"] >= 1 and hw["memory_gb"] > 0 and isinstance(hw["gpus"], list)
    for key in ("harness_version", "git_commit", "git_dirty", "package_dir"):
        assert key in prov["code"]


def test_git_commit_comes_from_the_package_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git checkout
    info = code_version()
    package_dir = Path(harness.__file__).resolve().parent
    assert info["package_dir"] == str(package_dir)
    expected = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True, text=True)
    if expected.returncode == 0:
        assert info["git_commit"] == expected.stdout.strip()
        assert isinstance(info["git_dirty"], bool)
    else:  # installed outside a checkout (or no commit yet): said so, not guessed
        assert info["git_commit"] is None and info["git_dirty"] is None

"""Where the runs of a plan execute: here, one after another, or as jobs through submitit (its local executor,
or Slurm), never through a scheduler of our own.

``local``           each run in a Python process of its own, one after another, on this machine
``submitit-local``  submitit's LocalExecutor: real submitit jobs (pickled, signalled, requeued) on this machine
``slurm``           submitit's Slurm executor: one job per run, an array of at most ``max_parallel`` at a time

A job is a :class:`RunJob`: it plans its config where it runs and executes it. On a time limit or a preemption
submitit calls its ``checkpoint`` and requeues it; the requeued job resumes the run from its latest checkpoint
(exact resume), after taking over the run directory's claim from its own dead predecessor.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.config import ConfigError, RunConfig, check_value, config_from_dict, load_yaml, one_of

LAUNCHERS = ("local", "submitit-local", "slurm")
# Every job submitted, one JSON line each, in the job folder: `harness runs` lists those not started yet as queued.
JOBS_FILE = "jobs.jsonl"


@dataclass(frozen=True)
class SlurmOptions:
    """What each job asks the cluster for (``--slurm-config FILE.yaml``, then the command line's flags)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_run: int = 0
    cpus_per_run: int | None = None
    mem_gb: float | None = None
    time_min: int = 24 * 60  # a run past it is requeued and resumes from its latest checkpoint
    max_parallel: int = 16  # array parallelism: jobs running at once
    # Processes training one run, data-parallel (DDP through accelerate, started by torchrun inside the job); None
    # = one per GPU asked for (gpus_per_run), at least one.
    processes_per_run: int | None = None
    sbatch: tuple[str, ...] = ()  # extra sbatch options, e.g. "--exclusive", "--mail-type=END"
    job_dir: str | None = None  # submitit's folder (scripts, logs, pickles); default <results>/.jobs

    def __post_init__(self) -> None:
        check_value(self.gpus_per_run >= 0, "slurm.gpus_per_run", self.gpus_per_run, ">= 0")
        check_value(self.cpus_per_run is None or self.cpus_per_run >= 1, "slurm.cpus_per_run", self.cpus_per_run,
                    "null or >= 1")
        check_value(self.mem_gb is None or self.mem_gb > 0, "slurm.mem_gb", self.mem_gb, "null or > 0")
        check_value(self.time_min >= 1, "slurm.time_min", self.time_min, ">= 1 (minutes)")
        check_value(self.max_parallel >= 1, "slurm.max_parallel", self.max_parallel, ">= 1")
        check_value(self.processes_per_run is None or self.processes_per_run >= 1, "slurm.processes_per_run",
                    self.processes_per_run, "null (one per GPU) or >= 1")
        for line in self.sbatch:
            check_value(line.startswith("--"), "slurm.sbatch", line, "sbatch long options, e.g. --exclusive")

    @classmethod
    def load(cls, yaml_path: str | Path | None = None, **given: Any) -> "SlurmOptions":
        """Defaults < the YAML file's keys < the given (not None) values; an unknown key names the valid ones."""
        data = dict(load_yaml(yaml_path)) if yaml_path else {}
        data.update({k: v for k, v in given.items() if v is not None and v != ()})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown Slurm option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        if isinstance(data.get("sbatch"), str):
            data["sbatch"] = shlex.split(data["sbatch"])
        if "sbatch" in data:
            data["sbatch"] = tuple(data["sbatch"])
        return cls(**data)

    @property
    def processes(self) -> int:
        return self.processes_per_run or max(self.gpus_per_run, 1)

    def executor_parameters(self, name: str) -> dict:
        """``AutoExecutor.update_parameters`` keywords (Slurm's prefixed ``slurm_``)."""
        extra = {}
        for line in self.sbatch:
            key, _, value = line[2:].partition("=")
            extra[key.replace("-", "_")] = value or True
        params = {"name": name, "timeout_min": self.time_min, "gpus_per_node": self.gpus_per_run or None,
                  "cpus_per_task": self.cpus_per_run, "mem_gb": self.mem_gb, "slurm_partition": self.partition,
                  "slurm_account": self.account, "slurm_qos": self.qos, "slurm_constraint": self.constraint,
                  "slurm_array_parallelism": self.max_parallel,
                  "slurm_additional_parameters": extra or None}
        return {k: v for k, v in params.items() if v is not None}


class RunJob:
    """One run as a submitit job: plan the config where the job runs, execute it, resume after a requeue. With
    several processes the job starts them with torchrun (each a rank of accelerate's DDP) and waits."""

    def __init__(self, config: dict, results_root: str | None, processes: int = 1):
        self.config, self.results_root, self.processes = config, results_root, processes
        self._ranks = None  # the torchrun process, while one runs

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_ranks": None}

    def __call__(self) -> dict:
        import os

        import submitit

        from harness.engine.plan import plan_run
        from harness.engine.run import execute, run_in_subprocess

        env = submitit.JobEnvironment()  # the run records its job, for `harness runs`
        os.environ.update(HARNESS_JOB_ID=str(env.job_id), HARNESS_JOB_LOG=str(env.paths.stdout))
        config = config_from_dict(self.config)
        if self.processes == 1:
            run = execute(plan_run(config, self.results_root), progress=False)
        else:
            code = run_in_subprocess(config, self.results_root, processes=self.processes,
                                     started=lambda process: setattr(self, "_ranks", process))
            if code != 0:
                raise RuntimeError(f"the run's {self.processes} processes ended with exit code {code}; the job log "
                                   f"{env.paths.stdout} and the run directory's status.json say why")
            run = plan_run(config, self.results_root).run  # planned here, as the ranks did
        return {"run_dir": str(run.path), "state": run.state()}

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on a time limit or preemption: requeue the same run. Its checkpoints are the run
        directory's own, so the requeued job resumes from the latest one."""
        import submitit

        if self._ranks is not None and self._ranks.poll() is None:  # the ranks stop too (marked interrupted)
            self._ranks.terminate()
            try:
                self._ranks.wait(timeout=60)
            except Exception:  # noqa: BLE001  (still running: the requeue ends the job anyway)
                pass
        return submitit.helpers.DelayedSubmission(RunJob(self.config, self.results_root, self.processes))


@dataclass
class Launched:
    """What a launcher did with one config: its run directory and, for a job, its id and log."""

    config: RunConfig
    # Known once planned where the run executes (a job resolves training.precision=auto on its own node, which
    # is part of the run id): locally at once, for a job when it ends (or: `harness runs` as soon as it starts).
    run_dir: Path | None = None
    job: Any = None  # a submitit Job
    returncode: int | None = None  # local: the run's process's exit code
    error: str | None = None

    @property
    def job_id(self) -> str | None:
        return None if self.job is None else str(self.job.job_id)

    @property
    def log(self) -> str | None:
        return None if self.job is None else str(self.job.paths.stdout)

    def wait(self) -> bool:
        """Block until the run ends; whether it completed."""
        if self.job is not None and self.returncode is None and self.error is None:
            try:
                self.run_dir = Path(self.job.result()["run_dir"])
                self.returncode = 0
            except Exception as err:  # the job's own exception, or submitit's (killed, not requeued)
                self.error, self.returncode = f"{type(err).__name__}: {err}", 1
        return self.returncode == 0


@dataclass
class Launcher:
    """Starts runs: ``launch(configs)`` submits (or, locally, runs) each and returns what it launched."""

    kind: str = "local"
    results_root: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    say: Callable[[str], None] = print

    def __post_init__(self) -> None:
        one_of("--launcher", self.kind, LAUNCHERS)

    @property
    def job_dir(self) -> Path:
        from harness.paths import results_dir

        root = Path(self.results_root) if self.results_root is not None else results_dir()
        return Path(self.slurm.job_dir).expanduser() if self.slurm.job_dir else root / ".jobs"

    def describe(self, configs: Sequence[RunConfig]) -> list[str]:
        """What ``launch`` would submit (``--dry-run``): per job its name; for Slurm the sbatch script's options."""
        lines = [f"launcher {self.kind}: {len(configs)} run(s)" + ("" if self.kind == "local" else
                                                                  f", job files under {self.job_dir}")]
        if self.kind == "slurm":
            from submitit.slurm.slurm import _make_sbatch_string

            params = self.slurm.executor_parameters("harness")
            script = _make_sbatch_string(command="python -u -m submitit.core._submit ...", folder=self.job_dir,
                                         **_sbatch_keywords(params))
            lines += ["sbatch options of each job:"] + ["  " + line for line in script.splitlines()
                                                         if line.startswith("#SBATCH")]
        return lines

    def check(self, config: RunConfig) -> None:
        """Refuse, before anything starts, a run this launch cannot give what it needs."""
        processes = 1 if self.kind == "local" else self.slurm.processes
        if config.training.fsdp and processes < 2:
            raise ConfigError(f"training.fsdp shards the model over a run's processes, and this launch gives a run "
                              f"{processes}: launch it with --launcher submitit-local or slurm and --processes-per-run "
                              "N (N >= 2; on GPUs one per GPU is the default), or drop training.fsdp")

    def launch(self, configs: Sequence[RunConfig]) -> list[Launched]:
        for config in configs:
            self.check(config)
        launched = [Launched(config=c) for c in configs]
        if not launched:
            return []
        if self.kind == "local":
            from harness.engine.plan import plan_run
            from harness.engine.run import run_in_subprocess

            from tqdm.auto import tqdm

            for item in tqdm(launched, desc="runs", unit="run", file=sys.stderr):  # each in a process of its own
                item.run_dir = plan_run(item.config, self.results_root).run.path
                item.returncode = run_in_subprocess(item.config, self.results_root)
            return launched
        import submitit

        executor = submitit.AutoExecutor(folder=self.job_dir, cluster="local" if self.kind == "submitit-local"
                                         else "slurm")
        params = self.slurm.executor_parameters("harness")
        if self.kind == "submitit-local":  # the local executor knows only the generic keys
            params = {k: v for k, v in params.items() if k in ("name", "timeout_min", "gpus_per_node")}
        executor.update_parameters(**params)
        with executor.batch():
            jobs = [executor.submit(RunJob(item.config.to_dict(), None if self.results_root is None
                                           else str(self.results_root), self.slurm.processes)) for item in launched]
        from harness.io import append_jsonl

        append_jsonl(self.job_dir / JOBS_FILE, [
            {"job_id": str(job.job_id), "log": str(job.paths.stdout), "launcher": self.kind,
             "suite": item.config.suite, "method": item.config.method, "scale": item.config.scale,
             "seed": item.config.seed, "submitted": time.time()} for item, job in zip(launched, jobs)])
        for item, job in zip(launched, jobs):
            item.job = job
            self.say(f"submitted {item.config.suite}/{item.config.method} (seed {item.config.seed}): job {job.job_id}, "
                     f"log {job.paths.stdout}")
        return launched


def _sbatch_keywords(params: dict) -> dict:
    """AutoExecutor's keywords as ``_make_sbatch_string`` names them (its ``slurm_`` prefix and generic names)."""
    renames = {"name": "job_name", "timeout_min": "time", "mem_gb": None}
    out: dict = {}
    for key, value in params.items():
        if key == "mem_gb":
            out["mem"] = f"{int(value)}GB"
        elif key.startswith("slurm_"):
            out[key[len("slurm_"):]] = value
        else:
            out[renames.get(key, key)] = value
    return out


def add_launcher_arguments(parser) -> None:
    """``--launcher`` and the Slurm options, for ``harness run`` and ``harness reproduce``."""
    group = parser.add_argument_group("launcher (where the runs execute)")
    group.add_argument("--launcher", choices=LAUNCHERS, default="local",
                       help="local: here, one after another (default); submitit-local: submitit jobs on this "
                            "machine; slurm: one Slurm job per run, through submitit")
    group.add_argument("--slurm-config", help="YAML file of Slurm options (the flags below override it)")
    group.add_argument("--partition")
    group.add_argument("--account")
    group.add_argument("--qos")
    group.add_argument("--constraint")
    group.add_argument("--gpus-per-run", type=int)
    group.add_argument("--cpus-per-run", type=int)
    group.add_argument("--mem-gb", type=float)
    group.add_argument("--time-min", type=int, help="a job's time limit; a run past it is requeued and resumes")
    group.add_argument("--max-parallel", type=int, help="jobs running at once (Slurm array parallelism)")
    group.add_argument("--processes-per-run", type=int,
                       help="data-parallel processes training each run (default: one per GPU of --gpus-per-run)")
    group.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="an extra sbatch option, e.g. --sbatch=--exclusive (repeatable)")
    group.add_argument("--job-dir", help="where submitit keeps job scripts and logs (default <results>/.jobs)")


def launcher_from_args(args, results_root: str | None, say: Callable[[str], None] = print) -> Launcher:
    slurm = SlurmOptions.load(args.slurm_config, partition=args.partition, account=args.account, qos=args.qos,
                              constraint=args.constraint, gpus_per_run=args.gpus_per_run,
                              cpus_per_run=args.cpus_per_run, mem_gb=args.mem_gb, time_min=args.time_min,
                              max_parallel=args.max_parallel, processes_per_run=args.processes_per_run,
                              sbatch=tuple(args.sbatch), job_dir=args.job_dir)
    return Launcher(kind=args.launcher, results_root=results_root, slurm=slurm, say=say)

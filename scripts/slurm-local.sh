#!/usr/bin/env bash
# A single-node Slurm on this machine, from Debian's packages, for the `-m slurm` tests.
#
#   bash scripts/slurm-local.sh start    # install if missing, configure, start munged/slurmctld/slurmd
#   bash scripts/slurm-local.sh status   # daemons, sinfo, squeue
#   bash scripts/slurm-local.sh stop     # stop the three daemons this script started
#
# Needs root (it installs packages and writes /etc/slurm/slurm.conf, where every Slurm client,
# the venv's submitit included, looks). No systemd: the daemons are started directly, logs and
# state under $HARNESS_SLURM_DIR (default /var/lib/harness-slurm). No cgroups, no accounting
# database: see docs/slurm-local.md. `start` is idempotent: when everything runs it only checks.
set -euo pipefail

DIR=${HARNESS_SLURM_DIR:-/var/lib/harness-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by harness scripts/slurm-local.sh"
PARTITION=debug
# A requeued job may not start again before its credential expires (Slurm's default: 120 s).
CRED_EXPIRE=${HARNESS_SLURM_CRED_EXPIRE:-10}
NODE=$(hostname -s)
MUNGE_SOCKET=/run/munge/munge.socket.2

say() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then exec sudo -E bash "$0" "$@"; fi
    die "needs root (apt-get, /etc/slurm, daemons); run it as root or with sudo"
  fi
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  local missing=()
  for p in munge slurmctld slurmd slurm-client; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' init scripts would try to start the daemons; there is no init here.
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$DIR/log/apt.log" 2>&1 || rc=$?
  [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || { tail -20 "$DIR/log/apt.log" >&2; die "apt-get install failed (log: $DIR/log/apt.log)"; }
}

write_conf() {
  # `slurmd -C` prints this machine: NodeName=... CPUs=... Boards=... RealMemory=...
  local hw cpus mem
  hw=$(slurmd -C | head -1) || die "slurmd -C failed"
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  [ -n "$cpus" ] && [ -n "$mem" ] || die "cannot read CPUs/RealMemory from: $hw"
  hw=${hw#NodeName=* }  # keep the sockets/cores/threads layout slurmd will report
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    [ -n "${HARNESS_SLURM_FORCE:-}" ] || die "$CONF exists and was not written by this script; \
set HARNESS_SLURM_FORCE=1 to replace it (a copy is kept as $CONF.orig)"
    cp -p "$CONF" "$CONF.orig"
  fi
  mkdir -p /etc/slurm
  cat >"$CONF.tmp" <<EOF
$MARK; rewritten on every start
ClusterName=harness
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=$CRED_EXPIRE
CryptoType=crypto/munge
MpiDefault=none
# no cgroups: processes are tracked through /proc, tasks are not confined
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
SchedulerType=sched/backfill
# a requeued job becomes eligible again after cred_expire; look for it every few seconds
SchedulerParameters=bf_interval=2,sched_interval=5
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
SlurmdTimeout=30
SlurmctldTimeout=30
MinJobAge=60
KillWait=10
InactiveLimit=0
Waittime=0
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  sed -i "s/RealMemory=[0-9]*/RealMemory=$mem/; s/ UpTime=[^ ]*//" "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  if [ -S "$MUNGE_SOCKET" ] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    (command -v mungekey >/dev/null && mungekey --create --keyfile=/etc/munge/munge.key) \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 0700 /etc/munge; chmod 0600 /etc/munge/munge.key; chmod 0755 /run/munge
  touch "$DIR/log/munged.log"; chown munge:munge "$DIR/log/munged.log"
  # munged refuses to run as root; run it as its own user, as the Debian service does.
  runuser -u munge -- munged --force --log-file="$DIR/log/munged.log" --pid-file=/run/munge/munged.pid \
    || die "munged did not start; see $DIR/log/munged.log"
  cp /run/munge/munged.pid "$DIR/run/munged.pid"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.2; done
  die "munge does not answer (munge -n | unmunge); see $DIR/log/munged.log"
}

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1; }

usage_hint() {
  cat <<EOF
Slurm is up: partition '$PARTITION', node $NODE ($(sinfo -h -N -n "$NODE" -o '%c CPUs, %m MB')).
  sbatch --wrap 'sleep 1; hostname'; squeue; scontrol show job JOBID
  .venv/bin/python -m pytest -m slurm tests/test_slurm.py -q
  bash scripts/slurm-local.sh stop
logs: $DIR/log   (no accounting: sacct does not work, use scontrol show job)
EOF
}

start() {
  need_root "$@"
  mkdir -p "$DIR"/{state,spool,run,log}
  chmod 0755 "$DIR"
  if pid_alive "$DIR/run/munged.pid" && pid_alive "$DIR/run/slurmctld.pid" \
    && pid_alive "$DIR/run/slurmd.pid"; then
    case "$(node_state)" in
      idle|mixed|allocated|completing) say "already running (node $NODE: $(node_state))"; usage_hint; return ;;
    esac
  fi
  install_packages
  write_conf
  start_munge
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    slurmctld -f "$CONF" || die "slurmctld did not start; tail $DIR/log/slurmctld.log:
$(tail -20 "$DIR/log/slurmctld.log" 2>/dev/null)"
  fi
  if ! pid_alive "$DIR/run/slurmd.pid"; then
    slurmd -f "$CONF" || die "slurmd did not start; tail $DIR/log/slurmd.log:
$(tail -20 "$DIR/log/slurmd.log" 2>/dev/null)"
  fi
  local state=""
  for _ in $(seq 120); do
    state=$(node_state)
    case "$state" in
      idle|mixed|allocated) break ;;
      down*|drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  case "$state" in
    idle|mixed|allocated) usage_hint ;;
    *) say "node $NODE is '${state:-not listed}' after 60 s"
       sinfo -R >&2 || true
       tail -15 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
       exit 1 ;;
  esac
}

stop_pidfile() {  # name pidfile
  local pidf=$2 pid
  pid_alive "$pidf" || { rm -f "$pidf"; return; }
  pid=$(cat "$pidf")
  kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then say "$1 ($pid) ignores SIGTERM; SIGKILL"; kill -9 "$pid"; fi
  rm -f "$pidf"
  say "stopped $1 ($pid)"
}

stop() {
  need_root "$@"
  stop_pidfile slurmd "$DIR/run/slurmd.pid"
  stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
  stop_pidfile munged "$DIR/run/munged.pid"
}

status() {
  local d
  for d in munged slurmctld slurmd; do
    if pid_alive "$DIR/run/$d.pid"; then echo "$d: running (pid $(cat "$DIR/run/$d.pid"))"
    else echo "$d: not running"; fi
  done
  if command -v sinfo >/dev/null && pid_alive "$DIR/run/slurmctld.pid"; then
    sinfo -N -l
    squeue
  fi
}

case "${1:-}" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Start a real single-machine SLURM cluster (Debian's slurm-wlm 22.05 + munge) on this host:
# this host is both the controller (slurmctld) and the one compute node (slurmd).
#
#   sudo tools/slurm/start_local_cluster.sh      # install if needed, configure, start, wait until idle
#   tools/slurm/stop_local_cluster.sh            # stop the daemons (config and packages stay)
#
# Idempotent: a second run with the cluster up and the config unchanged does nothing but check
# that the node is idle. A changed config (e.g. more memory, EXPLAINBENCH_SLURM_GPUS) restarts
# the daemons. No accounting database (slurmdbd): `sacct` answers "accounting storage is
# disabled", so Snakemake's SLURM executor must poll with squeue (profiles/slurm sets
# slurm-status-command: squeue) and finished jobs stay visible to squeue for MinJobAge seconds.
# Finished jobs are also appended to $STATE_DIR/jobcomp.log (jobcomp/filetxt), a plain-text
# job history that needs no database.
#
# Settings (environment):
#   EXPLAINBENCH_SLURM_PARTITION  the default partition's name (default: debug)
#   EXPLAINBENCH_SLURM_EXTRA_PARTITION  a second, non-default partition on the node (default: batch)
#   EXPLAINBENCH_SLURM_MEM_FRACTION  share of MemTotal offered as RealMemory (default: 0.85)
#   EXPLAINBENCH_SLURM_GPUS       advertise N generic "gpu" resources on the node (default 0).
#                                 Bookkeeping only (no device is bound: task/none): lets a CPU
#                                 machine check that jobs ask for and get the GPUs they need.
#   EXPLAINBENCH_SLURM_TIMEOUT    seconds to wait for the node to become idle (default: 120)
set -euo pipefail

PARTITION="${EXPLAINBENCH_SLURM_PARTITION:-debug}"
EXTRA_PARTITION="${EXPLAINBENCH_SLURM_EXTRA_PARTITION:-batch}"
MEM_FRACTION="${EXPLAINBENCH_SLURM_MEM_FRACTION:-0.85}"
GPUS="${EXPLAINBENCH_SLURM_GPUS:-0}"
TIMEOUT="${EXPLAINBENCH_SLURM_TIMEOUT:-120}"
CONF_DIR=/etc/slurm
STATE_DIR=/var/spool/slurm-explainbench
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm

say() { echo "[start_local_cluster] $*"; }
die() { echo "[start_local_cluster] ERROR: $*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=EXPLAINBENCH_SLURM_PARTITION,EXPLAINBENCH_SLURM_EXTRA_PARTITION,EXPLAINBENCH_SLURM_MEM_FRACTION,EXPLAINBENCH_SLURM_GPUS,EXPLAINBENCH_SLURM_TIMEOUT "$0" "$@"
    fi
    die "needs root (apt-get install, /etc/munge, /etc/slurm); run it with sudo"
fi

# ----------------------------------------------------------------------------- 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || die "slurm is not installed and apt-get is not available (Debian/Ubuntu only)"
    say "installing slurmctld, slurmd, slurm-client, munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# ----------------------------------------------------------------------------- 2. munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating the munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    if [[ -f /run/munge/munged.pid ]] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        die "munged runs (pid $(cat /run/munge/munged.pid)) but does not answer; see /var/log/munge/munged.log"
    fi
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do munge_ok && break; sleep 0.5; done
    munge_ok || die "munged did not start; see /var/log/munge/munged.log"
fi

# ----------------------------------------------------------------------------- 3. slurm.conf
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk -v f="$MEM_FRACTION" '/^MemTotal:/ {printf "%d", $2 / 1024 * f}' /proc/meminfo)
install -d -m 0755 "$CONF_DIR" "$STATE_DIR" "$STATE_DIR/ctld" "$STATE_DIR/d" "$LOG_DIR" "$RUN_DIR"

GRES_TYPES=""
NODE_GRES=""
if [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    GRES_TYPES="GresTypes=gpu"
    NODE_GRES="Gres=gpu:${GPUS}"
fi

NEW_CONF=$(mktemp)
trap 'rm -f "$NEW_CONF" "$NEW_GRES"' EXIT
cat >"$NEW_CONF" <<EOF
# Written by explainbench tools/slurm/start_local_cluster.sh: a one-machine test cluster.
ClusterName=explainbench
SlurmctldHost=${HOST}
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${STATE_DIR}/ctld
SlurmdSpoolDir=${STATE_DIR}/d
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: no accounting; a plain-text record of finished jobs instead.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG_DIR}/jobcomp.log
# squeue shows finished jobs for MinJobAge seconds: Snakemake's squeue status checks need >= 120.
MinJobAge=600
ReturnToService=2
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MpiDefault=none
${GRES_TYPES}
NodeName=${HOST} CPUs=${CPUS} RealMemory=${MEM_MB} ${NODE_GRES} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
# A second partition on the same node, so a config's slurm.partition can be seen at work.
PartitionName=${EXTRA_PARTITION} Nodes=${HOST} Default=NO MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
NEW_GRES=$(mktemp)
if [[ -n "$NODE_GRES" ]]; then
    # slurmd counts a GPU per file: plain placeholder files stand in for /dev/nvidia*.
    install -d -m 0755 "$STATE_DIR/fake-gpus"
    for ((i = 0; i < GPUS; i++)); do touch "$STATE_DIR/fake-gpus/gpu$i"; done
    echo "NodeName=${HOST} Name=gpu File=${STATE_DIR}/fake-gpus/gpu[0-$((GPUS - 1))]" >"$NEW_GRES"
fi

changed=0
if ! cmp -s "$NEW_CONF" "$CONF_DIR/slurm.conf"; then
    install -m 0644 "$NEW_CONF" "$CONF_DIR/slurm.conf"
    changed=1
fi
if ! cmp -s "$NEW_GRES" "$CONF_DIR/gres.conf" 2>/dev/null; then
    if [[ -s "$NEW_GRES" ]]; then install -m 0644 "$NEW_GRES" "$CONF_DIR/gres.conf"; else rm -f "$CONF_DIR/gres.conf"; fi
    changed=1
fi

# ----------------------------------------------------------------------------- 4. daemons
running() {  # running <pidfile> <name>
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null && [[ "$(ps -p "$(cat "$1")" -o comm= 2>/dev/null)" == "$2" ]]
}
stop_daemon() {  # stop_daemon <pidfile> <name>
    if running "$1" "$2"; then
        local pid; pid=$(cat "$1")
        kill "$pid"
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$1"
}

if [[ $changed -eq 1 ]]; then
    say "slurm.conf written ($HOST: CPUs=$CPUS RealMemory=${MEM_MB}MB partition=$PARTITION gpus=$GPUS)"
    if running "$RUN_DIR/slurmctld.pid" slurmctld || running "$RUN_DIR/slurmd.pid" slurmd; then
        say "config changed: restarting the daemons"
        stop_daemon "$RUN_DIR/slurmd.pid" slurmd
        stop_daemon "$RUN_DIR/slurmctld.pid" slurmctld
    fi
fi

if ! running "$RUN_DIR/slurmctld.pid" slurmctld; then
    say "starting slurmctld"
    slurmctld || die "slurmctld did not start; see $LOG_DIR/slurmctld.log"
fi
for _ in $(seq 40); do scontrol ping 2>/dev/null | grep -q "is UP" && break; sleep 0.5; done
scontrol ping 2>/dev/null | grep -q "is UP" || die "slurmctld does not answer; see $LOG_DIR/slurmctld.log"

if ! running "$RUN_DIR/slurmd.pid" slurmd; then
    say "starting slurmd"
    slurmd || die "slurmd did not start; see $LOG_DIR/slurmd.log"
fi

# ----------------------------------------------------------------------------- 5. wait until idle
state() { sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1; }
deadline=$((SECONDS + TIMEOUT))
while true; do
    s=$(state)
    case "$s" in
        idle|mixed|allocated|completing) break ;;
        inval*) die "node $HOST rejected its configuration: $(scontrol show node "$HOST" | grep -o 'Reason=.*')" ;;
        drain*|down*|fail*)
            # A node left down by an earlier, stopped slurmd (or a drained one) comes back here.
            scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    (( SECONDS < deadline )) || die "node $HOST is '$s', not idle, after ${TIMEOUT}s; see $LOG_DIR/slurmd.log, $LOG_DIR/slurmctld.log and \`scontrol show node $HOST\`"
    sleep 1
done
say "ready: $(sinfo -h -o '%P %a %D %T %N')"

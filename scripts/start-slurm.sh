#!/usr/bin/env bash
# Start a single-node SLURM "cluster" on this machine, for tests and demos.
#
#   sudo bash scripts/start-slurm.sh        # or as root: bash scripts/start-slurm.sh
#
# - installs Debian's slurm-wlm and munge with apt-get if slurmctld is missing;
# - writes /etc/slurm/slurm.conf for one node named after `hostname -s`
#   (CPUs = nproc, RealMemory from /proc/meminfo), partition "debug" (default,
#   up to 4 jobs per core);
#   no cgroups (proctrack/linuxproc, task/none), no slurmdbd: accounting is off
#   (accounting_storage/none) and finished jobs are logged by jobcomp/filetxt to
#   $JOBCOMP_LOG (default /var/log/slurm/jobcomp.log), one line per job;
# - creates the munge key if absent, starts munged, slurmctld and slurmd as plain
#   daemons (no systemd needed) and waits until `sinfo` shows the node usable.
#
# Idempotent: when its daemons run and the node answers, it only checks (< 1 s).
# It leaves alone a slurm.conf it did not write (a real cluster's).
# Environment: SLURM_START_TIMEOUT (seconds to wait for the node, default 60),
#              SLURM_FORCE_CONFIG=1 rewrites slurm.conf and restarts the daemons.
# Exit status 0 when the node is idle/mixed/allocated, non-zero with log tails otherwise.
set -euo pipefail

TIMEOUT=${SLURM_START_TIMEOUT:-60}
NODE=$(hostname -s)
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
JOBCOMP_LOG=${JOBCOMP_LOG:-$LOG_DIR/jobcomp.log}
MARKER="# written by dmeta scripts/start-slurm.sh"

log() { echo "start-slurm: $*" >&2; }
die() {
    log "ERROR: $*"
    for f in /var/log/munge/munged.log "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
        if [ -f "$f" ]; then
            echo "---- tail $f ----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it installs packages and starts system daemons)"
    exit 77
fi

# Usable node state, as sinfo prints it (%T): idle, mixed or allocated (no drain/down).
node_ready() {
    local state
    state=$(timeout 5 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1) || return 1
    case "$state" in
        idle|mixed|allocated|completing) return 0 ;;
        *) return 1 ;;
    esac
}

# The slurm.conf this script wants, printed on stdout.
render_conf() {
    local cpus mem_mb real_mem slurm_user
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # Leave some memory for the OS; slurmd drains a node whose RealMemory is too high.
    real_mem=$((mem_mb * 9 / 10))
    # The user the package creates; fall back to root if it is missing.
    slurm_user=slurm
    id -u "$slurm_user" >/dev/null 2>&1 || slurm_user=root
    cat <<EOF
$MARKER
# Single-node test cluster: one node ($NODE), partition "debug".
ClusterName=dmeta
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$slurm_user
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=60
KillWait=5
Waittime=0
MessageTimeout=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
# OverSubscribe: up to 4 jobs may share a core, so a long-lived test cluster
# does not starve other test jobs on a 2-core machine.
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Never overwrite a SLURM set up by someone else (e.g. a real cluster node).
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF" && [ -z "${SLURM_FORCE_CONFIG:-}" ]; then
    if command -v sinfo >/dev/null 2>&1 && timeout 10 sinfo -h >/dev/null 2>&1; then
        log "$CONF was not written by this script and SLURM answers: using it as it is"
        exit 0
    fi
    log "ERROR: $CONF was not written by this script; refusing to replace it"
    log "(SLURM_FORCE_CONFIG=1 replaces it, keeping a .bak copy)"
    exit 1
fi

# Fast path: our configuration, our daemons alive, node usable.
if command -v sinfo >/dev/null 2>&1 && [ -z "${SLURM_FORCE_CONFIG:-}" ] \
    && [ -f "$CONF" ] && render_conf | cmp -s - "$CONF" \
    && pid_alive /run/munge/munged.pid && pid_alive /run/slurm/slurmctld.pid \
    && pid_alive /run/slurm/slurmd.pid && node_ready; then
    log "SLURM already running; node $NODE is $(sinfo -h -N -n "$NODE" -o '%T')"
    exit 0
fi

# 1. Packages -----------------------------------------------------------------
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    log "installing slurm-wlm and munge with apt-get (once)"
    export DEBIAN_FRONTEND=noninteractive
    # No init system here: keep package scripts from trying to start services.
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
    [ -n "$made_policy" ] && rm -f "$policy"
fi

# 2. Configuration --------------------------------------------------------------
SLURM_USER=slurm
id -u "$SLURM_USER" >/dev/null 2>&1 || SLURM_USER=root
mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" /run/slurm
chown "$SLURM_USER" "$LOG_DIR" "$STATE_DIR/slurmctld" /run/slurm
touch "$JOBCOMP_LOG"
chown "$SLURM_USER" "$JOBCOMP_LOG"
new_conf=$(mktemp)
render_conf >"$new_conf"

restart=
if [ -n "${SLURM_FORCE_CONFIG:-}" ] || [ ! -f "$CONF" ] || ! cmp -s "$new_conf" "$CONF"; then
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        cp "$CONF" "$CONF.bak.$(date +%s)"
        log "saved the previous $CONF as $CONF.bak.*"
    fi
    install -m 644 "$new_conf" "$CONF"
    restart=1
    log "wrote $CONF (node $NODE, $(grep -o 'CPUs=[0-9]* RealMemory=[0-9]*' "$CONF") MB)"
fi
rm -f "$new_conf"

# 3. munge -------------------------------------------------------------------------
MUNGE_USER=munge
id -u "$MUNGE_USER" >/dev/null 2>&1 || MUNGE_USER=root
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown -R "$MUNGE_USER": /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 700 /etc/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
chmod 400 /etc/munge/munge.key

if ! pid_alive /run/munge/munged.pid || ! munge -n </dev/null >/dev/null 2>&1; then
    log "starting munged"
    if [ "$MUNGE_USER" = root ]; then
        /usr/sbin/munged --force
    else
        runuser -u "$MUNGE_USER" -- /usr/sbin/munged
    fi
    for _ in $(seq 50); do
        munge -n </dev/null >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge does not work"

# 4. slurmctld and slurmd ------------------------------------------------------------
stop_daemon() {  # pidfile
    if pid_alive "$1"; then
        local pid
        pid=$(cat "$1")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}
if [ -n "$restart" ]; then
    stop_daemon /run/slurm/slurmd.pid
    stop_daemon /run/slurm/slurmctld.pid
fi
if ! pid_alive /run/slurm/slurmctld.pid; then
    log "starting slurmctld"
    # -c would clear saved jobs; keep state so running jobs survive a restart.
    /usr/sbin/slurmctld || die "slurmctld did not start"
fi
for _ in $(seq 100); do
    timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.2
done
timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer"
if ! pid_alive /run/slurm/slurmd.pid; then
    log "starting slurmd"
    /usr/sbin/slurmd || die "slurmd did not start"
fi

# 5. Wait for the node --------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
resumed=
while ! node_ready; do
    state=$(timeout 5 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)
    # A node left drained/down by an earlier run (e.g. after a reboot): resume it.
    case "$state" in
        *drain*|down*|fail*)
            if [ -z "$resumed" ]; then
                log "node $NODE is '$state'; resuming it"
                scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi
            ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        sinfo -N -l >&2 || true
        scontrol show node "$NODE" >&2 || true
        die "node $NODE not ready after ${TIMEOUT}s (state '${state:-unknown}')"
    fi
    sleep 0.5
done
log "SLURM is up: $(sinfo -h -N -n "$NODE" -o '%N %T %c CPUs %m MB, partition %P')"

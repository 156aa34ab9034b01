#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the real-Slurm test
# (`cargo test -p ablate-runner --test sweep_slurm -- --ignored`), as `.ci/run` does.
#
# Needs root and Debian/Ubuntu packages (installs slurmctld, slurmd, slurm-client and munge
# when missing; no systemd, no cgroups, no accounting). State, spool and logs go to
# $SLURM_DIR (default /tmp/slurm-local); `scripts/slurm/stop.sh` stops the daemons again.
# Exits non-zero, with the end of the daemons' logs, when the node does not become idle.
set -euo pipefail
D=${SLURM_DIR:-/tmp/slurm-local}
H=$(hostname -s)
T0=$(date +%s.%N)

if [ "$(id -u)" != 0 ]; then
    echo "start.sh: needs root (installs packages, writes /etc/slurm and /etc/munge)" >&2
    exit 1
fi

# 1. Packages, only if missing.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client munge
fi
T1=$(date +%s.%N)

# 2. slurmd looks itself up by NodeName: the host name must resolve.
getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts

# 3. munge: a key (the package usually creates one), the daemon run as user munge.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

# 4. Configuration and fresh state folders; the node as `slurmd -C` sees it, with 1000 MB.
rm -rf "$D/state" "$D/spool"
mkdir -p "$D/state" "$D/spool" "$D/log"
NODE=$(slurmd -C | head -1 | sed 's/RealMemory=[0-9]*/RealMemory=1000/')
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF

# 5. The daemons (they daemonize and write their PID files).
slurmctld -c -i
slurmd

# 6. Wait until the node is idle.
for _ in $(seq 120); do
    [ "$(sinfo -h -n "$H" -o '%T' 2>/dev/null)" = idle ] && break
    sleep 0.25
done
if [ "$(sinfo -h -n "$H" -o '%T' 2>/dev/null)" != idle ]; then
    echo "start.sh: slurm did not become ready" >&2
    sinfo >&2 || true
    tail -n 30 "$D"/log/*.log >&2
    exit 1
fi
T2=$(date +%s.%N)
sinfo
awk -v a="$T0" -v b="$T1" -v c="$T2" \
    'BEGIN{printf "packages: %.2fs  daemons ready: %.2fs\n", b-a, c-b}'

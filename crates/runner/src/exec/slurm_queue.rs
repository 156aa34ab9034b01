//! What Slurm says about a job array and a partition: each queued task's state and the reason
//! it waits (`squeue`), the partition's nodes (`sinfo`), cancelling (`scancel`); and which
//! pending reasons can never clear by waiting, so that a sweep stops with a clear error instead
//! of pending forever.

use std::process::Command;

use super::slurm_error::SlurmError;

/// One task of a job as `squeue -h -j ID -o '%i|%T|%r'` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedTask {
    /// `JOBID_TASK` (or `JOBID_[0-3]` for tasks that have not started).
    pub id: String,
    /// `PENDING`, `RUNNING`, ... (empty when squeue printed only the id).
    pub state: String,
    /// Why it waits (`Resources`, `Priority`, `PartitionConfig`, ...; `None` when running).
    pub reason: String,
}

/// Runs a Slurm command and returns its stdout.
fn slurm_output(cmd: &str, args: &[&str]) -> Result<std::process::Output, SlurmError> {
    Command::new(cmd)
        .args(args)
        .output()
        .map_err(|source| SlurmError::Spawn {
            command: cmd.into(),
            source,
        })
}

/// The tasks of job `id` still queued or running (empty once the job ended; a job Slurm no
/// longer knows counts as ended).
pub fn queued_tasks(id: &str) -> Result<Vec<QueuedTask>, SlurmError> {
    let out = slurm_output("squeue", &["-h", "-j", id, "-o", "%i|%T|%r"])?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // squeue fails with "Invalid job id specified" once the job has been purged; any other
        // failure (controller unreachable, ...) must not be taken for the job's end.
        if stderr.contains("Invalid job id") {
            return Ok(Vec::new());
        }
        return Err(SlurmError::Refused {
            code: out.status.code(),
            stderr: format!("squeue: {}", stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_task)
        .collect())
}

fn parse_task(line: &str) -> QueuedTask {
    let mut parts = line.trim().splitn(3, '|');
    let mut next = || parts.next().unwrap_or("").trim().to_string();
    QueuedTask {
        id: next(),
        state: next(),
        reason: next(),
    }
}

/// `scancel ID`.
pub fn cancel(id: &str) -> Result<(), SlurmError> {
    let out = slurm_output("scancel", &[id])?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SlurmError::Refused {
            code: out.status.code(),
            stderr: format!("scancel: {}", String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// Why a task pending with `reason` will never start, or `None` when waiting may help
/// (`Resources`, `Priority`, `BeginTime`, a down or drained node, limits of running jobs, ...).
/// `known_nodes` are the cluster's node names (`sinfo -N`), to tell a node that does not exist
/// from one that is merely unavailable.
pub fn hopeless_reason(reason: &str, known_nodes: &[String]) -> Option<&'static str> {
    let name = reason.split([',', ' ', '(']).next().unwrap_or("");
    match name {
        "PartitionConfig" => Some(
            "the request exceeds what the partition allows: more CPUs, GPUs or memory per task \
             than its nodes have, or one of its limits",
        ),
        "PartitionNodeLimit" => Some("the job asks for more nodes than the partition allows"),
        "PartitionTimeLimit" => Some("the job's time limit exceeds the partition's"),
        "BadConstraints" => Some("no node can satisfy the job's constraints: features, gres"),
        "InvalidAccount" => Some("the job's account is not valid"),
        "InvalidQOS" => Some("the job's QOS is not valid"),
        "ReqNodeNotAvail" => {
            let listed = reason
                .split("UnavailableNodes:")
                .nth(1)
                .map(|s| s.trim_end_matches(')').trim());
            match listed {
                // A node list with ranges (`node[1-4]`) cannot be checked without expanding it.
                Some(list) if !list.is_empty() && !list.contains('[') => list
                    .split(',')
                    .any(|n| !known_nodes.iter().any(|k| k == n.trim()))
                    .then_some("the job asks for a node that does not exist"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The cluster's node names (`sinfo -h -N -o %N`).
pub fn node_names() -> Result<Vec<String>, SlurmError> {
    let out = slurm_output("sinfo", &["-h", "-N", "-o", "%N"])?;
    if !out.status.success() {
        return Err(SlurmError::Refused {
            code: out.status.code(),
            stderr: format!("sinfo: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// What the sweep needs to know of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its name.
    pub name: String,
    /// The most CPUs a node of it has.
    pub max_cpus: u32,
    /// Whether any of its nodes offers GPUs (`gpu` in its gres).
    pub has_gpus: bool,
}

/// The partition a job goes to: `name`, or the cluster's default one (marked `*` by `sinfo`).
/// `None` when `sinfo` lists no such partition.
pub fn partition(name: Option<&str>) -> Result<Option<Partition>, SlurmError> {
    let out = slurm_output("sinfo", &["-h", "-o", "%P|%c|%G"])?;
    if !out.status.success() {
        return Err(SlurmError::Refused {
            code: out.status.code(),
            stderr: format!("sinfo: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(parse_partitions(
        &String::from_utf8_lossy(&out.stdout),
        name,
    ))
}

/// Folds `sinfo -h -o '%P|%c|%G'` lines (one per partition and node group) into the partition
/// `name` (or the default one).
fn parse_partitions(text: &str, name: Option<&str>) -> Option<Partition> {
    let mut found: Option<Partition> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.trim().split('|');
        let (Some(p), Some(cpus), gres) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let is_default = p.ends_with('*');
        let p = p.trim_end_matches('*');
        let wanted = match name {
            Some(n) => p == n,
            None => is_default,
        };
        if !wanted {
            continue;
        }
        // `%c` is `N` or `N+` (nodes with different counts): the digits are the smallest.
        let cpus: u32 = cpus.trim_end_matches('+').parse().unwrap_or(0);
        let gpus = gres.is_some_and(|g| g.contains("gpu"));
        let entry = found.get_or_insert(Partition {
            name: p.to_string(),
            max_cpus: 0,
            has_gpus: false,
        });
        entry.max_cpus = entry.max_cpus.max(cpus);
        entry.has_gpus |= gpus;
    }
    found
}

/// The partition named by `sbatch` options (`--partition=X`, `--partition X`, `-p X`, `-pX`).
pub fn partition_arg(sbatch_args: &[String]) -> Option<String> {
    let mut it = sbatch_args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--partition=") {
            return Some(v.to_string());
        }
        if a == "--partition" || a == "-p" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("-p").filter(|v| !v.is_empty()) {
            return Some(v.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_parse_with_and_without_reasons() {
        assert_eq!(
            parse_task("12_[0-3]|PENDING|PartitionConfig"),
            QueuedTask {
                id: "12_[0-3]".into(),
                state: "PENDING".into(),
                reason: "PartitionConfig".into()
            }
        );
        assert_eq!(parse_task("12").state, "");
    }

    /// Reasons as Slurm 22.05 prints them in `squeue -o %r`.
    #[test]
    fn hopeless_reasons_are_told_from_ones_that_clear() {
        let nodes = vec!["node1".to_string(), "node2".to_string()];
        assert!(hopeless_reason("PartitionConfig", &nodes).is_some());
        assert!(hopeless_reason("BadConstraints", &nodes).is_some());
        assert!(hopeless_reason("Resources", &nodes).is_none());
        assert!(hopeless_reason("Priority", &nodes).is_none());
        assert!(hopeless_reason("ReqNodeNotAvail, UnavailableNodes:node7", &nodes).is_some());
        assert!(hopeless_reason("ReqNodeNotAvail, UnavailableNodes:node2", &nodes).is_none());
        assert!(hopeless_reason("ReqNodeNotAvail, UnavailableNodes:node[1-9]", &nodes).is_none());
        assert!(hopeless_reason("ReqNodeNotAvail, Reserved for maintenance", &nodes).is_none());
    }

    #[test]
    fn partitions_fold_node_groups_and_find_the_default() {
        let text = "debug*|2|(null)\ngpu|16|gpu:h100:4\ngpu|32+|gpu:a100:8\n";
        assert_eq!(
            parse_partitions(text, None),
            Some(Partition {
                name: "debug".into(),
                max_cpus: 2,
                has_gpus: false
            })
        );
        assert_eq!(
            parse_partitions(text, Some("gpu")),
            Some(Partition {
                name: "gpu".into(),
                max_cpus: 32,
                has_gpus: true
            })
        );
        assert_eq!(parse_partitions(text, Some("none")), None);
    }

    #[test]
    fn the_partition_is_found_in_sbatch_options() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            partition_arg(&args(&["--partition=gpu"])),
            Some("gpu".into())
        );
        assert_eq!(
            partition_arg(&args(&["--time=1:00:00", "-p", "a"])),
            Some("a".into())
        );
        assert_eq!(partition_arg(&args(&["-pb"])), Some("b".into()));
        assert_eq!(partition_arg(&args(&["--time=1:00:00"])), None);
    }
}

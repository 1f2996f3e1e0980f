//! fio runs under a time limit: a run still going `limit` after it started is killed with its
//! job processes (its own process group) and tried again, up to [`FIO_ATTEMPTS`] times, and so is
//! one killed by a signal (libnfs 4.0 crashes now and then: double free, SIGSEGV). Now and then
//! one job of fio's nfs engine never completes (seen against ganesha over NFSv3: a job left
//! waiting on its MOUNT connection after its I/O; and `nfs_umount` never returning). fio's jobs
//! stay processes: as threads (`thread=1`) the nfs engine crashed (SIGSEGV) over NFSv4.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::servers::pinned;

/// How long past its runtime a fio run may go before it counts as hung.
pub const FIO_GRACE: Duration = Duration::from_secs(20);
pub const FIO_ATTEMPTS: u32 = 3;

/// A fio binary, the directory its job files and outputs go to, and the CPUs it runs on.
pub struct Fio<'a> {
    pub program: &'a Path,
    pub dir: &'a Path,
    pub cpus: Option<&'a str>,
}

enum FioError {
    Hung(anyhow::Error),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for FioError {
    fn from(e: anyhow::Error) -> FioError {
        FioError::Failed(e)
    }
}

impl From<std::io::Error> for FioError {
    fn from(e: std::io::Error) -> FioError {
        FioError::Failed(e.into())
    }
}

impl Fio<'_> {
    /// Runs fio on a job file under a time limit, up to `FIO_ATTEMPTS` times while it hangs or
    /// is killed by a signal; its JSON output. Other failures are not retried. `before_attempt`
    /// runs before each attempt (number from 1), e.g. to re-create the file a job writes.
    pub fn json_with(
        &self,
        job: &str,
        name: &str,
        limit: Duration,
        mut before_attempt: impl FnMut(u32) -> anyhow::Result<()>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut attempt = 1;
        loop {
            before_attempt(attempt)?;
            match self.json_once(job, name, limit) {
                Err(FioError::Hung(e)) if attempt < FIO_ATTEMPTS => {
                    eprintln!("{name}: {e:#}; trying again");
                    attempt += 1;
                }
                Err(FioError::Hung(e) | FioError::Failed(e)) => return Err(e),
                Ok(json) => return Ok(json),
            }
        }
    }

    /// [`Fio::json_with`] with nothing to do between attempts.
    pub fn json(&self, job: &str, name: &str, limit: Duration) -> anyhow::Result<serde_json::Value> {
        self.json_with(job, name, limit, |_| Ok(()))
    }

    fn json_once(&self, job: &str, name: &str, limit: Duration) -> Result<serde_json::Value, FioError> {
        let job_path = self.dir.join(format!("{name}.fio"));
        std::fs::write(&job_path, job)?;
        let out_path = self.dir.join(format!("{name}.json"));
        let err_path = self.dir.join(format!("{name}.err"));
        let mut child = pinned(self.program, self.cpus)
            .arg("--output-format=json")
            .arg(format!("--output={}", out_path.display()))
            .arg(&job_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path)?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                // fio's job processes are in its process group (fio leads it).
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                let e = anyhow::anyhow!(
                    "fio still running after {} s: killed (a hung NFS client or server)",
                    limit.as_secs()
                );
                return Err(FioError::Hung(e));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let stderr = stderr.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" / ");
        if !status.success() {
            let e = anyhow::anyhow!("fio failed ({status}): {stderr}");
            // Killed by a signal: libnfs 4.0 crashes now and then (double free, SIGSEGV) on
            // either server; the client's fault, tried again like a hang.
            if std::os::unix::process::ExitStatusExt::signal(&status).is_some() {
                return Err(FioError::Hung(e));
            }
            return Err(e.into());
        }
        let text = std::fs::read_to_string(&out_path).with_context(|| format!("reading {}", out_path.display()))?;
        // fio may print notes before the JSON object.
        let start = text.find('{').with_context(|| format!("fio printed no JSON: {stderr}"))?;
        let json: serde_json::Value = serde_json::from_str(&text[start..]).context("parsing fio's JSON")?;
        let job_error = json.pointer("/jobs/0/error").and_then(|v| v.as_i64()).unwrap_or(0);
        if job_error != 0 {
            return Err(anyhow::anyhow!("fio job error {job_error}: {stderr}").into());
        }
        Ok(json)
    }
}

/// What fio's JSON says of the reads of job 0 (all jobs with `group_reporting=1`).
#[derive(Clone, Debug, Default)]
pub struct Measure {
    pub iops: f64,
    pub bytes_per_s: f64,
    /// Completion latency percentiles, microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Measure {
    pub fn of_reads(json: &serde_json::Value) -> anyhow::Result<Measure> {
        let read = json.pointer("/jobs/0/read").context("no jobs[0].read in fio's JSON")?;
        let num = |path: &str| read.pointer(path).and_then(serde_json::Value::as_f64);
        let ios = num("/total_ios").context("total_ios")?;
        if ios <= 0.0 {
            anyhow::bail!("fio completed no reads");
        }
        let percentile = |p: &str| num(&format!("/clat_ns/percentile/{p}")).map(|ns| ns / 1e3).unwrap_or(f64::NAN);
        Ok(Measure {
            iops: num("/iops").context("iops")?,
            bytes_per_s: num("/bw_bytes").context("bw_bytes")?,
            p50_us: percentile("50.000000"),
            p99_us: percentile("99.000000"),
            p999_us: percentile("99.900000"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fio_output(total_ios: u64) -> serde_json::Value {
        serde_json::json!({"jobs": [{"error": 0, "read": {
            "total_ios": total_ios, "iops": 2500.5, "bw_bytes": 10_242_048,
            "clat_ns": {"percentile": {"50.000000": 350_208, "99.000000": 2_867_200, "99.900000": 4_423_680}}
        }}]})
    }

    #[test]
    fn parses_fio_json() {
        let m = Measure::of_reads(&fio_output(25_005)).unwrap();
        assert_eq!(m.iops, 2500.5);
        assert_eq!(m.bytes_per_s, 10_242_048.0);
        assert_eq!((m.p50_us, m.p99_us, m.p999_us), (350.208, 2867.2, 4423.68));
        let err = Measure::of_reads(&fio_output(0)).unwrap_err().to_string();
        assert!(err.contains("no reads"), "{err}");
        assert!(Measure::of_reads(&serde_json::json!({"jobs": []})).is_err());
    }
}

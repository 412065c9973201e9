//! Figures, their targets, and the Markdown table they are printed and written as.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Which benchmark or scenario.
    pub bench: String,
    /// What was measured.
    pub measure: String,
    pub value: String,
    /// The target, in words (empty when the figure is for information).
    pub target: String,
    /// Whether the target was met; `None` when there is no target.
    pub met: Option<bool>,
}

impl Figure {
    /// A figure with no target.
    pub fn info(bench: &str, measure: &str, value: impl Into<String>) -> Self {
        Self {
            bench: bench.to_owned(),
            measure: measure.to_owned(),
            value: value.into(),
            target: String::new(),
            met: None,
        }
    }

    /// A figure checked against its target.
    pub fn checked(
        bench: &str,
        measure: &str,
        value: impl Into<String>,
        target: &str,
        met: bool,
    ) -> Self {
        Self {
            bench: bench.to_owned(),
            measure: measure.to_owned(),
            value: value.into(),
            target: target.to_owned(),
            met: Some(met),
        }
    }
}

/// A table of figures under a title, with the command that produced them.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn push(&mut self, figure: Figure) {
        println!(
            "  {:<28} {:<52} {:>22}  {}",
            figure.bench,
            figure.measure,
            figure.value,
            match figure.met {
                Some(true) => format!("ok ({})", figure.target),
                Some(false) => format!("MISSED ({})", figure.target),
                None => String::new(),
            }
        );
        self.figures.push(figure);
    }

    pub fn extend(&mut self, figures: impl IntoIterator<Item = Figure>) {
        for figure in figures {
            self.push(figure);
        }
    }

    /// Targets missed.
    pub fn missed(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.met == Some(false))
            .collect()
    }

    /// The Markdown table, under a line saying what produced it (`provenance`: which
    /// code, when, on what machine).
    pub fn markdown(&self, title: &str, command: &str, provenance: &str) -> String {
        let mut out = format!("# {title}\n\nProduced by {command} {provenance}.\n\n");
        out.push_str("| Benchmark | Measure | Figure | Target | Met |\n|---|---|---|---|---|\n");
        for f in &self.figures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.bench,
                f.measure,
                f.value,
                f.target,
                match f.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            );
        }
        out
    }

    /// Writes the table to `path` (creating its folder).
    pub fn write(&self, path: &Path, title: &str, command: &str) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let provenance = format!("at {} on {}", revision(Path::new("."), path), machine());
        std::fs::write(path, self.markdown(title, command, &provenance))
    }
}

/// The commit the figures come from, read from the git checkout at `dir`:
/// `commit <short hash>`, with "and uncommitted changes" when tracked files other
/// than `report` (the table being rewritten, relative to `dir`) differ from it.
pub fn revision(dir: &Path, report: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "an unknown commit (not a git checkout)".into();
    };
    let skip = format!(":(exclude){}", report.display());
    match git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        &skip,
    ]) {
        Some(changes) if changes.is_empty() => format!("commit {head}"),
        Some(_) => format!("commit {head} and uncommitted changes"),
        None => format!("commit {head} (its state unknown)"),
    }
}

/// A one-line description of this machine, for the report.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| {
            format!(", {} GiB", (kib + (1 << 19)) >> 20)
        });
    format!(
        "{} UTC, {cores} cores{memory}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    )
}

/// The `q`-quantile (0.0 to 1.0) of `samples`, by nearest rank.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
        assert_eq!(
            quantile(&[Duration::from_millis(7)], 0.99),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn a_missed_target_is_reported_and_marked_in_the_table() {
        let mut report = Report::default();
        report.push(Figure::checked(
            "size",
            "intake zipped",
            "6.1 MB",
            "≤ 5 MB",
            false,
        ));
        report.push(Figure::checked(
            "size",
            "verify zipped",
            "3.0 MB",
            "≤ 5 MB",
            true,
        ));
        report.push(Figure::info("scan", "calls", "2"));
        assert_eq!(report.missed().len(), 1);
        let table = report.markdown("T", "`make bench`", "at commit abc on here");
        assert!(table.starts_with("# T\n\nProduced by `make bench` at commit abc on here.\n"));
        assert!(table.contains("| size | intake zipped | 6.1 MB | ≤ 5 MB | **no** |"));
        assert!(table.contains("| size | verify zipped | 3.0 MB | ≤ 5 MB | yes |"));
        assert!(table.contains("| scan | calls | 2 |  |  |"));
    }

    #[test]
    fn revision_names_the_commit_and_says_when_tracked_files_differ() {
        let dir = std::env::temp_dir().join(format!("lapse-revision-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let report = Path::new("docs/performance.md");
        assert_eq!(
            revision(&dir, report),
            "an unknown commit (not a git checkout)"
        );
        git(&["init", "-q"]);
        std::fs::write(dir.join("code.rs"), "fn main() {}\n").unwrap();
        std::fs::write(dir.join(report), "old table\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "first"]);
        let head = git(&["rev-parse", "--short", "HEAD"]);
        assert_eq!(revision(&dir, report), format!("commit {head}"));
        // Rewriting the table itself is not a change to the measured code.
        std::fs::write(dir.join(report), "new table\n").unwrap();
        assert_eq!(revision(&dir, report), format!("commit {head}"));
        std::fs::write(dir.join("code.rs"), "fn main() { loop {} }\n").unwrap();
        assert_eq!(
            revision(&dir, report),
            format!("commit {head} and uncommitted changes")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

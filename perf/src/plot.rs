//! PNG bar charts for the benchmark reports, drawn by gnuplot (`gnuplot-nox`, pngcairo terminal;
//! installed by scripts/install-perf-deps.sh). The `.gp` script and `.dat` data are written
//! beside the PNG, so a plot can be redrawn or restyled by hand.
//!
//! Clustered bars: one cluster per group (a phase), one colour per series (a system); a value
//! that is missing (the system failed or does not do that phase) is left out, never drawn as 0.
//!
//! Runs on: the caller's thread (runs gnuplot and waits).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub log_y: bool,
    /// The clusters along the x axis.
    pub groups: Vec<String>,
    /// (series name, one value per group; None = not available).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// gnuplot's string quoting: double quotes with `\` and `"` escaped.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The data file: a header row of series names, then one row per group (`NaN` = missing).
fn data(chart: &BarChart) -> String {
    let mut d = String::from("group");
    for (name, _) in &chart.series {
        let _ = write!(d, "\t{}", quoted(name));
    }
    d.push('\n');
    for (i, g) in chart.groups.iter().enumerate() {
        d.push_str(&quoted(g));
        for (_, values) in &chart.series {
            match values.get(i).copied().flatten() {
                Some(v) if v.is_finite() && !(chart.log_y && v <= 0.0) => {
                    let _ = write!(d, "\t{v}");
                }
                _ => d.push_str("\tNaN"),
            }
        }
        d.push('\n');
    }
    d
}

fn script(chart: &BarChart, dat: &Path, png: &Path) -> String {
    let mut s = String::new();
    let width = (420 + 90 * chart.groups.len() * chart.series.len().max(1)).clamp(800, 1800);
    let _ = writeln!(s, "set terminal pngcairo size {width},560 noenhanced font \"DejaVu Sans,10\"");
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    // Names relative to the PNG's directory (gnuplot runs there), so the files can be moved.
    let _ = writeln!(s, "set output {}", quoted(&name(png)));
    let _ = writeln!(s, "set title {}", quoted(&chart.title));
    let _ = writeln!(s, "set ylabel {}", quoted(&chart.y_label));
    let _ = writeln!(
        s,
        "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1"
    );
    let _ = writeln!(s, "set boxwidth 0.9\nset grid ytics\nset key outside right top vertical noenhanced");
    let _ = writeln!(s, "set datafile missing \"NaN\"\nset datafile separator \"\\t\"");
    // A log axis starts at half the power of ten below the smallest value (a bar stays visible).
    let smallest = chart
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .filter(|x| *x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if chart.log_y && smallest.is_finite() { 10f64.powf(smallest.log10().floor()) / 2.0 } else { 0.0 };
    let _ = writeln!(s, "set xtics nomirror rotate by -20\nset yrange [{floor}:*]");
    if chart.log_y {
        let _ = writeln!(s, "set logscale y");
    }
    let plots: Vec<String> = (0..chart.series.len())
        .map(|i| {
            let first = if i == 0 { format!("{} ", quoted(&name(dat))) } else { "'' ".into() };
            format!("{first}using {}:xtic(1) title columnheader({})", i + 2, i + 2)
        })
        .collect();
    let _ = writeln!(s, "plot {}", plots.join(", \\\n     "));
    s
}

/// Draws `chart` into `png` (with `.gp` and `.dat` beside it).
pub fn write_png(chart: &BarChart, png: &Path) -> anyhow::Result<()> {
    if chart.series.is_empty() || chart.groups.is_empty() {
        bail!("{}: nothing to plot", chart.title);
    }
    if chart.series.iter().all(|(_, v)| v.iter().all(|x| x.is_none())) {
        bail!("{}: no values (every system failed or skipped it)", chart.title);
    }
    let dat = png.with_extension("dat");
    let gp = png.with_extension("gp");
    std::fs::write(&dat, data(chart)).with_context(|| format!("writing {}", dat.display()))?;
    std::fs::write(&gp, script(chart, &dat, png)).with_context(|| format!("writing {}", gp.display()))?;
    let dir = png.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let out = Command::new("gnuplot")
        .arg(gp.file_name().context("a .gp file name")?)
        .current_dir(dir)
        .output()
        .context("running gnuplot (apt gnuplot-nox; scripts/install-perf-deps.sh)")?;
    if !out.status.success() {
        bail!("gnuplot {} ({}): {}", gp.display(), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let size = std::fs::metadata(png).with_context(|| format!("gnuplot wrote no {}", png.display()))?.len();
    if size < 1000 {
        bail!("gnuplot wrote {} of {size} bytes only", png.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_with_awkward_names_and_missing_values() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let chart = BarChart {
            title: "epoch read: \"cold\" then warm_ish".into(),
            y_label: "MB/s".into(),
            log_y: false,
            groups: vec!["epoch 1 (cold)".into(), "epoch 2".into()],
            series: vec![
                ("bucketfs".into(), vec![Some(900.0), Some(2100.5)]),
                ("rclone_mount \"full\"".into(), vec![None, Some(400.0)]),
            ],
        };
        let png = dir.path().join("c.png");
        write_png(&chart, &png)?;
        let bytes = std::fs::read(&png)?;
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(bytes.len() > 5000, "{}", bytes.len());
        assert!(std::fs::read_to_string(png.with_extension("dat"))?.contains("NaN"));
        let log = BarChart { log_y: true, series: vec![("a".into(), vec![Some(0.0), Some(10.0)])], ..chart };
        write_png(&log, &dir.path().join("log.png"))?;
        let empty = BarChart { series: vec![("a".into(), vec![None, None])], ..log };
        assert!(write_png(&empty, &dir.path().join("e.png")).is_err());
        Ok(())
    }
}

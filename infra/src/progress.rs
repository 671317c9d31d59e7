//! Progress of a long pass over the event log (rebuilds, the log-read bench): events done of the
//! total, percent, rate and time left, on stderr at most once a second and once at the end.

use std::time::{Duration, Instant};

/// How often a line is printed at most.
const EVERY: Duration = Duration::from_secs(1);

/// One pass over `total` events.
#[derive(Debug)]
pub struct LogProgress {
    label: &'static str,
    total: u64,
    started: Instant,
    printed: Option<Instant>,
}

impl LogProgress {
    pub fn new(label: &'static str, total: u64) -> Self {
        Self {
            label,
            total,
            started: Instant::now(),
            printed: None,
        }
    }

    /// `done` events so far: prints a line unless one was printed less than a second ago.
    pub fn update(&mut self, done: u64) {
        let now = Instant::now();
        if self.printed.is_some_and(|at| now - at < EVERY) {
            return;
        }
        self.printed = Some(now);
        eprintln!("{}", self.line(done, now - self.started));
    }

    /// The final line, whatever the time since the last one.
    pub fn finish(&mut self, done: u64) {
        self.printed = None;
        self.update(done);
    }

    /// `label  done/total events  pct %  rate events/s  ETA m:ss`.
    pub fn line(&self, done: u64, elapsed: Duration) -> String {
        let percent = if self.total > 0 {
            (done as f64 * 100.0 / self.total as f64).min(100.0)
        } else {
            100.0
        };
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        let eta = match self.total.checked_sub(done) {
            Some(0) | None => "done".to_owned(),
            Some(_) if rate < 1.0 => "ETA --:--".to_owned(),
            Some(left) => {
                let secs = (left as f64 / rate).ceil() as u64;
                format!("ETA {}:{:02}", secs / 60, secs % 60)
            }
        };
        format!(
            "  {} {done:>10}/{} events  {percent:5.1} %  {rate:>8.0} events/s  {eta}",
            self.label, self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_rate_and_time_left_from_the_pace_so_far() {
        let progress = LogProgress::new("tracking", 100_000);
        let line = progress.line(25_000, Duration::from_secs(5));
        assert!(line.contains("25000/100000 events"), "{line}");
        assert!(line.contains(" 25.0 %"), "{line}");
        assert!(line.contains("5000 events/s"), "{line}");
        // 75,000 left at 5,000/s: 15 s.
        assert!(line.ends_with("ETA 0:15"), "{line}");
    }

    #[test]
    fn line_says_done_at_the_end_and_caps_percent_when_the_log_grew() {
        let progress = LogProgress::new("search", 1_000);
        assert!(progress
            .line(1_000, Duration::from_secs(1))
            .ends_with("done"));
        let grown = progress.line(1_200, Duration::from_secs(1));
        assert!(
            grown.contains("100.0 %") && grown.ends_with("done"),
            "{grown}"
        );
    }
}

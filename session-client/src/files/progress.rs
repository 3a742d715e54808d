//! Progress bars for `cp`, one per file under way, on stderr, and only when stderr is a
//! terminal: a log or a pipe gets no bars and no escape sequences, just the errors.

use std::io::IsTerminal;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where the bars are drawn, if anywhere.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars on stderr if it is a terminal, none otherwise.
    pub(crate) fn on_stderr() -> Progress {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Progress { bars }
    }

    /// A bar for a file of `total` bytes named `name`, `done` of them there already (a resume).
    pub(crate) fn bar(&self, name: &str, total: u64, done: u64) -> Bar {
        let Some(bars) = &self.bars else { return Bar::none() };
        let style = ProgressStyle::with_template(
            "{wide_msg} {bytes:>10}/{total_bytes:<10} {bar:24.cyan/blue} {binary_bytes_per_sec:>12} {eta:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style).with_message(name.to_owned()).with_position(done);
        // Its rate is of what this run moves, not of the bytes a resume kept.
        bar.reset_eta();
        let bar = bars.add(bar);
        Bar(Some(Drawn { bar, bars: bars.clone(), name: name.to_owned(), from: done }))
    }

    /// Says `line` on stderr above the bars, so that neither garbles the other.
    pub(crate) fn say(&self, line: &str) {
        match &self.bars {
            Some(bars) if bars.println(line).is_ok() => {}
            _ => eprintln!("{line}"),
        }
    }
}

/// One file's bar, or nothing.
#[derive(Debug, Clone)]
pub(crate) struct Bar(Option<Drawn>);

/// A bar on the terminal.
#[derive(Debug, Clone)]
pub(crate) struct Drawn {
    bar: ProgressBar,
    bars: MultiProgress,
    name: String,
    /// Where this run started (a resume's kept bytes).
    from: u64,
}

impl Bar {
    /// No bar: stderr is not a terminal.
    pub(crate) fn none() -> Bar {
        Bar(None)
    }

    pub(crate) fn inc(&self, len: u64) {
        if let Some(drawn) = &self.0 {
            drawn.bar.inc(len);
        }
    }

    /// The file is copied: its bar gives way to one line saying so, so that the bars drawn
    /// again and again are only those of files under way, however many a `-r` copies.
    pub(crate) fn finish(&self) {
        if let Some(Drawn { bar, bars, name, from }) = &self.0 {
            let total = bar.length().unwrap_or_else(|| bar.position());
            let secs = bar.elapsed().as_secs_f64();
            let moved = bar.position().saturating_sub(*from);
            // Whole bytes a second are all a person needs here.
            let rate = if secs > 0.0 { (moved as f64 / secs) as u64 } else { moved };
            let line = format!("{name}  {}  {}/s", HumanBytes(total), HumanBytes(rate));
            bar.finish_and_clear();
            bars.remove(bar);
            let _ = bars.println(line);
        }
    }

    /// The file failed: the bar goes (its error is said instead).
    pub(crate) fn clear(&self) {
        if let Some(Drawn { bar, bars, .. }) = &self.0 {
            bar.finish_and_clear();
            bars.remove(bar);
        }
    }
}

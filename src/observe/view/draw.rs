//! Draws the live view's model on a ratatui frame: run header, a row per class, latency
//! sparklines, faults, and each SLA check's running verdict.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Sparkline, Table};

use super::model::{FaultLine, History, Model};
use crate::metrics::CheckStatus;
use crate::report::fmt;

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The whole screen.
pub fn frame(f: &mut Frame<'_>, m: &Model) {
    let classes = u16::try_from(m.classes.len().max(1)).unwrap_or(u16::MAX);
    let checks = m.sla.as_ref().map_or(1, |s| {
        u16::try_from(s.checks.len().max(1)).unwrap_or(u16::MAX)
    });
    let faults = u16::try_from(m.active_faults.len() + 1).unwrap_or(u16::MAX);
    let [header, table, sparks, bottom, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(classes.saturating_add(3)),
        Constraint::Length(7),
        Constraint::Min(checks.max(faults).saturating_add(3)),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, m);
    draw_classes(f, table, m);
    let [p50, p99, ttft] = Layout::horizontal([Constraint::Ratio(1, 3); 3]).areas(sparks);
    spark(f, p50, "latency p50", &m.p50_us);
    spark(f, p99, "latency p99", &m.p99_us);
    spark(f, ttft, "TTFT p99", &m.ttft_p99_us);
    let [left, right] =
        Layout::horizontal([Constraint::Length(56), Constraint::Min(40)]).areas(bottom);
    draw_faults(f, left, m);
    draw_sla(f, right, m);
    let keys = if m.stopping {
        "stopping: finishing requests in flight (up to 5 s), then writing the reports..."
    } else {
        "q / Ctrl-C: stop the run (the reports are written for what ran)"
    };
    f.render_widget(
        Paragraph::new(keys).style(Style::default().add_modifier(Modifier::DIM)),
        footer,
    );
}

fn draw_header(f: &mut Frame<'_>, area: Rect, m: &Model) {
    let title = format!(" gauntlet · {} ", m.scenario);
    let block = Block::bordered().title(title);
    if !m.started {
        let p = Paragraph::new("starting the mock upstreams and the gateway...").block(block);
        f.render_widget(p, area);
        return;
    }
    let phase = if m.ended {
        "ended"
    } else if m.stopping {
        "stopping"
    } else if m.elapsed < m.warmup {
        "warming up"
    } else {
        "running"
    };
    let ratio = if m.planned.is_zero() {
        0.0
    } else {
        (m.elapsed.as_secs_f64() / m.planned.as_secs_f64()).clamp(0.0, 1.0)
    };
    let label = format!(
        "{phase}  {} / {}   in flight {}   generator lag p99 {}",
        secs(m.elapsed),
        secs(m.planned),
        m.in_flight,
        ms(m.lag_p99),
    );
    let gauge = Gauge::default()
        .block(block)
        .gauge_style(Style::default().fg(Color::Blue))
        .ratio(ratio)
        .label(label);
    f.render_widget(gauge, area);
}

fn draw_classes(f: &mut Frame<'_>, area: Rect, m: &Model) {
    let header = Row::new([
        "class",
        "req/s",
        "errors/s",
        "error %",
        "dropped",
        "p50",
        "p99",
        "TTFT p99",
        "errors",
        "served by",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = m.classes.iter().map(|c| {
        let errors = c
            .error_kinds
            .iter()
            .take(2)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let served = c
            .served
            .iter()
            .take(3)
            .map(|(u, s)| format!("{u} {:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(" · ");
        let share = c
            .error_share
            .map_or_else(|| "-".into(), |s| format!("{:.2}%", s * 100.0));
        let style = if c.errors_per_s > 0.0 {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        Row::new([
            c.name.clone(),
            format!("{:.0}", c.rps),
            format!("{:.1}", c.errors_per_s),
            share,
            c.dropped_total.to_string(),
            ms(c.p50),
            ms(c.p99),
            ms(c.ttft_p99),
            errors,
            served,
        ])
        .style(style)
    });
    let widths = [
        Constraint::Length(16),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(26),
        Constraint::Min(20),
    ];
    let title = if m.classes.is_empty() {
        " classes (the first second is being measured) "
    } else {
        " classes, over the last second "
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title));
    f.render_widget(table, area);
}

fn spark(f: &mut Frame<'_>, area: Rect, what: &str, h: &History) {
    let points = h.last(usize::from(area.width.saturating_sub(2)));
    let now = points
        .last()
        .map_or_else(|| "-".into(), |us| format!("{:.1} ms", *us as f64 / 1e3));
    let top = points.iter().max().copied().unwrap_or(0);
    let title = format!(" {what}: {now} (top {:.1} ms) ", top as f64 / 1e3);
    let s = Sparkline::default()
        .block(Block::bordered().title(title))
        .data(&points)
        .style(Style::default().fg(Color::Cyan));
    f.render_widget(s, area);
}

fn fault_text(l: &FaultLine, verb: &str) -> String {
    format!("{} on {} {verb} {}", l.kind, l.upstream, secs(l.in_))
}

fn draw_faults(f: &mut Frame<'_>, area: Rect, m: &Model) {
    let mut lines: Vec<Line<'_>> = m
        .active_faults
        .iter()
        .map(|l| {
            Line::from(Span::styled(
                format!("ACTIVE  {}", fault_text(l, "lifts in")),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ))
        })
        .collect();
    lines.push(Line::from(match &m.next_fault {
        Some(l) => format!("next    {}", fault_text(l, "starts in")),
        None => "no more faults scheduled".into(),
    }));
    let p = Paragraph::new(lines).block(Block::bordered().title(" faults "));
    f.render_widget(p, area);
}

fn draw_sla(f: &mut Frame<'_>, area: Rect, m: &Model) {
    let block = Block::bordered().title(" SLA so far (as if the run stopped now) ");
    let Some(sla) = &m.sla else {
        let p = Paragraph::new("no SLA checks yet").block(block);
        f.render_widget(p, area);
        return;
    };
    let rows = sla.checks.iter().map(|c| {
        let (verdict, color) = match c.status {
            CheckStatus::Pass => ("PASS", Color::Green),
            CheckStatus::Fail => ("FAIL", Color::Red),
            CheckStatus::Inconclusive => ("INCONCLUSIVE", Color::Yellow),
        };
        Row::new([
            Span::styled(
                verdict,
                Style::default().fg(color).add_modifier(Modifier::BOLD),
            ),
            Span::raw(c.name.as_str()),
            Span::raw(c.scope.clone()),
            Span::raw(
                c.measured
                    .map_or_else(|| "-".into(), |v| fmt::in_unit(v, &c.unit)),
            ),
            Span::raw(fmt::in_unit(c.target, &c.unit)),
            Span::raw(c.samples.to_string()),
        ])
    });
    let widths = [
        Constraint::Length(13),
        Constraint::Length(24),
        Constraint::Length(20),
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Min(8),
    ];
    let header = Row::new(["verdict", "check", "scope", "now", "target", "samples"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    f.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{SlaCheck, SlaKey, SlaResult};
    use crate::observe::reading::{ClassReading, FaultReading, LiveReading};
    use crate::observe::snapshot::Histogram;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::sync::Arc;
    use std::time::Instant;

    fn screen(m: &Model) -> String {
        let mut t = Terminal::new(TestBackend::new(160, 50)).expect("a test terminal");
        t.draw(|f| frame(f, m)).expect("drawn");
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn the_screen_shows_classes_faults_and_verdicts() {
        let class = |ok| ClassReading {
            name: "everyday".into(),
            ok,
            errors: vec![("status_5xx", 0)],
            latency: Histogram {
                bounds_ns: &[1_000_000, 10_000_000],
                counts: vec![0, ok, 0],
                ..Histogram::default()
            },
            served: vec![("primary".into(), ok)],
            ..ClassReading::default()
        };
        let check = SlaCheck {
            name: SlaKey::Availability,
            scope: "overall".into(),
            target: 0.999,
            measured: Some(1.0),
            unit: "ratio".into(),
            samples: 400,
            status: CheckStatus::Pass,
            note: None,
            misses: None,
        };
        let snap = |at, ok| LiveReading {
            scenario: "quickstart".into(),
            elapsed: Duration::from_secs(at),
            planned: Duration::from_secs(20),
            classes: vec![class(ok)],
            faults: vec![FaultReading {
                upstream: "primary".into(),
                kind: "outage".into(),
                start: Duration::from_secs(8),
                end: Duration::from_secs(14),
                active: false,
            }],
            sla: Some(Arc::new(SlaResult {
                passed: true,
                verdict: CheckStatus::Pass,
                checks: vec![check.clone()],
            })),
            ..LiveReading::default()
        };
        let t0 = Instant::now();
        let mut m = Model::default();
        let before = screen(&m);
        assert!(before.contains("starting the mock upstreams"), "{before}");
        m.update(snap(2, 0), t0);
        m.update(snap(3, 200), t0 + Duration::from_secs(1));
        let s = screen(&m);
        for want in [
            "quickstart",
            "everyday",
            "200",
            "primary 100%",
            "next    outage on primary starts in 5.0 s",
            "PASS",
            "availability",
            // Measured and target, as the summary table writes them.
            "100%",
            "99.90%",
            "q / Ctrl-C",
        ] {
            assert!(s.contains(want), "no `{want}` on\n{s}");
        }
    }
}

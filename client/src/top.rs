//! `tessera top`: the cluster live in the terminal (ratatui on crossterm):
//! the master, task counts with a progress gauge, a graph of images
//! completed per second over the last minute, and the worker table.
//!
//! A task fetches a snapshot every `refresh` (reconnecting if the master goes
//! away) and hands it over on a `watch` channel; the screen redraws on a new
//! snapshot, on a key, on a resize, and once a second (so "updated … ago"
//! stays true). `q`, Esc or Ctrl-C quits and the terminal is restored, also
//! on a panic (ratatui's hook).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use ratatui::{
    DefaultTerminal, Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize},
    text::Line,
    widgets::{Block, Gauge, Paragraph, Row, Sparkline, Table},
};
use tessera_proto::ClusterInfo;
use tokio::sync::watch;

use crate::{Reconnecting, cluster_view};

/// What the screen shows.
#[derive(Debug, Default)]
pub struct View {
    /// The master's address, as the client reached it.
    pub addr: String,
    /// The latest snapshot and when it arrived.
    pub latest: Option<(ClusterInfo, Instant)>,
    /// Why the latest fetch failed, if it did.
    pub error: Option<String>,
    pub refresh: Duration,
}

type Fetched = Option<Result<ClusterInfo, String>>;

/// Runs until the user quits.
pub async fn run(conn: Arc<Reconnecting>, addr: String, refresh: Duration) -> anyhow::Result<()> {
    let (tx, rx) = watch::channel::<Fetched>(None);
    let fetcher = tokio::spawn(fetch(conn, refresh, tx));
    let mut view = View {
        addr,
        refresh,
        ..View::default()
    };
    let mut terminal = ratatui::try_init()?;
    let result = ui(&mut terminal, rx, &mut view).await;
    ratatui::try_restore()?;
    fetcher.abort();
    result
}

async fn fetch(conn: Arc<Reconnecting>, refresh: Duration, tx: watch::Sender<Fetched>) {
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let got = conn.run(|c| async move { c.cluster().await }).await;
        if tx.send(Some(got.map_err(|e| e.to_string()))).is_err() {
            return;
        }
    }
}

fn is_quit(k: &KeyEvent) -> bool {
    k.kind == KeyEventKind::Press
        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
            || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
}

async fn ui(
    terminal: &mut DefaultTerminal,
    mut rx: watch::Receiver<Fetched>,
    view: &mut View,
) -> anyhow::Result<()> {
    let mut keys = EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    loop {
        terminal.draw(|f| draw(f, view, Instant::now()))?;
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                match rx.borrow_and_update().clone() {
                    Some(Ok(info)) => {
                        view.latest = Some((info, Instant::now()));
                        view.error = None;
                    }
                    Some(Err(e)) => view.error = Some(e),
                    None => {}
                }
            }
            event = keys.next() => match event {
                Some(Ok(Event::Key(k))) if is_quit(&k) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = clock.tick() => {}
        }
    }
}

/// Draws the whole screen for the state in `view` at `now`.
pub fn draw(f: &mut Frame, view: &View, now: Instant) {
    let [head, gauge, graph, workers, foot] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let footer = footer(view, now);
    f.render_widget(Paragraph::new(footer), foot);
    let Some((info, _)) = &view.latest else {
        let waiting = format!("asking {} for the cluster's state…", view.addr);
        f.render_widget(
            Paragraph::new(waiting).block(Block::bordered().title(" tessera top ")),
            head,
        );
        return;
    };
    let lines: Vec<Line> = cluster_view::summary_lines(info, &view.addr)
        .into_iter()
        .map(Line::from)
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" tessera top ".bold())),
        head,
    );
    draw_progress(f, info, gauge);
    draw_graph(f, info, graph);
    draw_workers(f, info, workers);
}

fn footer(view: &View, now: Instant) -> Line<'static> {
    let age = view
        .latest
        .as_ref()
        .map(|(_, at)| now.saturating_duration_since(*at));
    let mut text = format!(
        " q quit · refreshed every {}",
        cluster_view::duration(view.refresh.as_millis() as u64)
    );
    if let Some(age) = age.filter(|a| *a > 2 * view.refresh) {
        text.push_str(&format!(
            " · last update {} ago",
            cluster_view::duration(age.as_millis() as u64)
        ));
    }
    match &view.error {
        Some(e) => Line::from(format!("{text} · {e}")).fg(Color::Red),
        None => Line::from(text),
    }
}

fn draw_progress(f: &mut Frame, info: &ClusterInfo, area: Rect) {
    let t = &info.tasks;
    let finished = t.done + t.failed + t.cancelled;
    let total = t.total();
    let ratio = if total == 0 {
        0.0
    } else {
        finished as f64 / total as f64
    };
    let label = format!(
        "{finished}/{total} tasks finished ({} done, {} failed, {} cancelled)",
        t.done, t.failed, t.cancelled
    );
    let gauge = Gauge::default()
        .block(Block::bordered().title(" progress "))
        .gauge_style(Style::new().fg(Color::Green))
        .ratio(ratio)
        .label(label);
    f.render_widget(gauge, area);
}

fn draw_graph(f: &mut Frame, info: &ClusterInfo, area: Rect) {
    let width = area.width.saturating_sub(2) as usize;
    let data: Vec<u64> = info
        .throughput
        .per_second
        .iter()
        .map(|n| u64::from(*n))
        .collect();
    let shown = &data[data.len().saturating_sub(width)..];
    let peak = shown.iter().copied().max().unwrap_or(0);
    let rates = cluster_view::rates(info);
    let title = format!(
        " images completed per second, last {} s (peak {peak}; now {:.1}/s) ",
        shown.len(),
        rates.images_per_s
    );
    let graph = Sparkline::default()
        .block(Block::bordered().title(title))
        .style(Style::new().fg(Color::Cyan))
        .data(shown);
    f.render_widget(graph, area);
}

fn draw_workers(f: &mut Frame, info: &ClusterInfo, area: Rect) {
    let mut rows = cluster_view::worker_rows(info).into_iter();
    let header = rows.next().unwrap_or_default();
    let widths = [
        Constraint::Fill(3),
        Constraint::Fill(3),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(12),
    ];
    let title = format!(" workers: {} ", info.workers_total);
    let table = Table::new(rows.map(Row::new), widths)
        .header(Row::new(header).bold())
        .block(Block::bordered().title(title));
    f.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};
    use tessera_proto::{TaskCounts, Throughput, WorkerInfo};

    use super::*;

    fn screen(view: &View, now: Instant) -> String {
        let mut t = Terminal::new(TestBackend::new(110, 30)).unwrap();
        t.draw(|f| draw(f, view, now)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut text = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                text.push_str(buf[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    #[test]
    fn the_screen_shows_the_master_progress_graph_and_workers() {
        let now = Instant::now();
        let info = ClusterInfo {
            master_id: "master-9-ff".into(),
            uptime_ms: 61_000,
            tasks: TaskCounts {
                queued: 1,
                running: 1,
                done: 6,
                failed: 1,
                cancelled: 1,
            },
            workers: vec![WorkerInfo {
                name: "alpha".into(),
                addr: "127.0.0.1:4000".into(),
                threads: 1,
                running: 1,
                done: 7,
                heartbeat_age_ms: Some(300),
                synthetic: true,
                ..WorkerInfo::default()
            }],
            workers_total: 1,
            throughput: Throughput {
                window_ms: 10_000,
                images: 8,
                bytes: 0,
                per_second: vec![1, 2, 5],
            },
        };
        let view = View {
            addr: "127.0.0.1:7878".into(),
            latest: Some((info, now)),
            error: None,
            refresh: Duration::from_secs(1),
        };
        let text = screen(&view, now);
        for want in [
            "master-9-ff at 127.0.0.1:7878, up 1m 1s",
            "8/10 tasks finished (6 done, 1 failed, 1 cancelled)",
            "last 3 s (peak 5; now 0.8/s)",
            "workers: 1",
            "alpha (synthetic)",
            "127.0.0.1:4000",
            "0.3 s ago",
            "q quit",
        ] {
            assert!(text.contains(want), "{want:?} not on screen:\n{text}");
        }
        // A stale snapshot says how old it is.
        let later = now + Duration::from_secs(5);
        assert!(screen(&view, later).contains("last update 5.0 s ago"));
    }

    #[test]
    fn before_the_first_snapshot_the_screen_says_what_it_waits_for() {
        let view = View {
            addr: "10.0.0.1:7878".into(),
            refresh: Duration::from_secs(1),
            ..View::default()
        };
        assert!(screen(&view, Instant::now()).contains("asking 10.0.0.1:7878"));
    }

    #[test]
    fn q_esc_and_ctrl_c_quit() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(is_quit(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_quit(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
    }
}

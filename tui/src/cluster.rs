//! The live cluster panel: nodes, pods, services and the latest events, as the watches see them.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::source::ClusterSnapshot;
use crate::strings;
use crate::theme::Theme;
use crate::widgets::fit;

/// Columns padded to fixed widths, the last one taking what is left.
fn row(cells: &[(&str, usize)], width: usize) -> String {
    let mut s = String::new();
    for (i, (c, w)) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            s.push_str(c);
        } else {
            s.push_str(&format!("{:w$} ", fit(c, *w), w = *w));
        }
    }
    fit(&s, width)
}

/// The panel's lines; only `height` of them from `scroll` are drawn, so 200 pods cost little.
pub fn lines(snap: &ClusterSnapshot, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if let Some(note) = &snap.note {
        out.push(Line::styled(fit(note, width), theme.dim()));
    }
    let head = |t: &str, n: usize| Line::styled(format!("{t} ({n})"), theme.heading());
    out.push(head(strings::NODES, snap.nodes.len()));
    for n in &snap.nodes {
        let mark = if n.ready {
            Span::styled("✓ ", theme.pass())
        } else {
            Span::styled("✗ ", theme.fail())
        };
        out.push(Line::from(vec![
            mark,
            Span::raw(row(
                &[(&n.name, 22), (&n.roles, 13), (&n.ip, 15)],
                width.saturating_sub(2),
            )),
        ]));
    }
    out.push(head(strings::PODS, snap.pods.len()));
    for p in &snap.pods {
        let name = if p.namespace == "default" {
            p.name.clone()
        } else {
            format!("{}/{}", p.namespace, p.name)
        };
        let style = match p.phase.as_str() {
            "Running" | "Succeeded" => theme.plain(),
            "Failed" => theme.fail(),
            _ => theme.dim(),
        };
        out.push(Line::styled(
            row(
                &[(&name, 20), (&p.phase, 9), (&p.ip, 12), (&p.node, 20)],
                width,
            ),
            style,
        ));
    }
    out.push(head(strings::SERVICES, snap.services.len()));
    for s in &snap.services {
        out.push(Line::raw(row(
            &[
                (&s.name, 12),
                (&s.kind, 12),
                (&s.cluster_ip, 12),
                (&s.ports, 20),
            ],
            width,
        )));
    }
    out.push(head(strings::EVENTS, snap.events.len()));
    for e in &snap.events {
        let style = if e.kind == "Warning" {
            theme.fail()
        } else {
            theme.plain()
        };
        out.push(Line::styled(
            row(&[(&e.object, 20), (&e.reason, 12), (&e.message, 40)], width),
            style,
        ));
    }
    out
}

pub fn draw(f: &mut Frame, area: Rect, snap: Option<&ClusterSnapshot>, scroll: u16, theme: &Theme) {
    let block = Block::bordered().title(strings::CLUSTER);
    let inner = block.inner(area);
    let lines = match snap {
        Some(s) => lines(s, usize::from(inner.width), theme),
        None => vec![Line::styled(strings::CLUSTER_WAIT, theme.dim())],
    };
    let max = (lines.len() as u16).saturating_sub(inner.height);
    f.render_widget(
        Paragraph::new(lines)
            .scroll((scroll.min(max), 0))
            .block(block),
        area,
    );
}

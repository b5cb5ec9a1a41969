//! `GET /`: the operator's status page, rendered on the server (no script): the queue, VRAM, the
//! recent slots with their outcome and breakdown, and a histogram of each stage's latency over
//! those slots. Every text from a recipe or a result is HTML-escaped.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::queue::RECENT_SLOTS;
use super::store::Summary;
use super::Shared;

/// The histogram's bucket bounds, seconds (the last bucket is everything above).
const BUCKETS_S: [f64; 7] = [0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 45.0];

/// Reads one stage's time from a summary.
type StageTime = fn(&Summary) -> Option<f64>;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.0}"))
}

/// The page's handler.
pub async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    let (view, recent) = {
        let table = shared.table();
        (table.view(), table.recent())
    };
    super::api::html(render(&view, &recent, shared.metrics.vram_bytes()))
}

/// The page as HTML.
pub fn render(view: &super::queue::QueueView, recent: &[Summary], vram_bytes: i64) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Vortex director</title>\
         <meta http-equiv=\"refresh\" content=\"5\"><style>body{font-family:sans-serif;margin:1.5em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
         .delivered{color:#070}.aborted,.failed{color:#a00}.flawed{color:#a60}</style></head><body>\
         <h1>Vortex director</h1>",
    );
    let running = view.running.map_or_else(|| "none".to_string(), |id| format!("slot {id}"));
    let waiting: Vec<String> = view.waiting.iter().map(u64::to_string).collect();
    let _ = write!(
        h,
        "<section id=\"queue\"><h2>Queue</h2><p>Running: <b id=\"running\">{running}</b>. \
         Waiting: <b id=\"depth\">{}</b> of {} ({}).</p><p>VRAM in use (resident models): \
         <b id=\"vram\">{:.2} GB</b></p></section>",
        view.depth,
        view.max,
        if waiting.is_empty() { "none".to_string() } else { waiting.join(", ") },
        vram_bytes as f64 / 1e9
    );
    let _ = write!(
        h,
        "<section><h2>Recent slots</h2><p>The last {RECENT_SLOTS} finished, newest first.</p><table id=\"recent\">\
         <tr><th>slot</th><th>outcome</th><th>detail</th><th>audio ms</th><th>image ms</th><th>video ms</th>\
         <th>clip ms</th><th>total ms</th><th>attempts a/i/v/c</th><th>ended</th></tr>"
    );
    for s in recent {
        let t = &s.timing_ms;
        let a = &s.attempts;
        let _ = write!(
            h,
            "<tr class=\"slot\"><td>{}</td><td class=\"{o}\">{o}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.0}</td><td>{}/{}/{}/{}</td><td>{}</td></tr>",
            s.slot_id,
            escape(&s.detail),
            ms(t.audio_ms),
            ms(t.image_ms),
            ms(t.video_ms),
            ms(t.clip_ms),
            t.total_ms,
            a.audio,
            a.image,
            a.video,
            a.clip,
            escape(&s.ended_at),
            o = s.outcome,
        );
    }
    h.push_str("</table></section>");
    h.push_str("<section><h2>Stage latency</h2><p>Slots above, by how long each stage took.</p><table id=\"latency\"><tr><th>stage</th>");
    for (i, b) in BUCKETS_S.iter().enumerate() {
        let from = if i == 0 { 0.0 } else { BUCKETS_S[i - 1] };
        let _ = write!(h, "<th>{from}–{b} s</th>");
    }
    let _ = write!(h, "<th>&gt; {} s</th></tr>", BUCKETS_S[BUCKETS_S.len() - 1]);
    let stages: [(&str, StageTime); 5] = [
        ("audio", |s| s.timing_ms.audio_ms),
        ("image", |s| s.timing_ms.image_ms),
        ("video", |s| s.timing_ms.video_ms),
        ("clip", |s| s.timing_ms.clip_ms),
        ("total", |s| Some(s.timing_ms.total_ms)),
    ];
    for (name, of) in stages {
        let mut counts = [0usize; BUCKETS_S.len() + 1];
        for v in recent.iter().filter_map(of) {
            let seconds = v / 1e3;
            counts[BUCKETS_S.iter().position(|&b| seconds <= b).unwrap_or(BUCKETS_S.len())] += 1;
        }
        let _ = write!(h, "<tr><th>{name}</th>");
        for c in counts {
            let _ = write!(h, "<td>{c}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></section><p><a href=\"/metrics\">metrics</a></p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_recipes_and_results_is_escaped() {
        assert_eq!(escape("<b a='1'>&\"</b>"), "&lt;b a=&#39;1&#39;&gt;&amp;&quot;&lt;/b&gt;");
        let view = super::super::queue::QueueView { depth: 1, max: 4, running: Some(7), waiting: vec![8] };
        let page = render(&view, &[], 2_500_000_000);
        assert!(page.contains("<b id=\"running\">slot 7</b>") && page.contains("2.50 GB"), "{page}");
    }
}

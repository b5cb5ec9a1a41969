//! `vortex serve` end to end: the binary as a child process on a loopback port with `vortex models
//! tiny`'s models on the CPU, driven over HTTP from this (second) process. Good and bad recipes
//! and their answers (202, 400, 409, 413, 429), results, files and metrics; a restart finds the
//! earlier slots; a slot timed out mid-stage leaves nothing partial and the next one still runs;
//! SIGTERM mid-slot; a burst of posts against the queue bound loses no accepted slot; the status
//! page in headless Chromium.
//!
//! Waiting for the server or a slot polls with a bounded total; nothing asserts wall time.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use vortex::events::RecordedEvent;
use vortex_real::config::Config;

/// The most polls of one wait, 50 ms apart (a tiny slot takes about a second in a debug build; a
/// long one about 15 s; a shared CPU may take several times that).
const POLLS: usize = 6000;
const POLL: Duration = Duration::from_millis(50);

/// A script of about 1,500 characters: several seconds of audio and video for the tiny models.
fn long_script() -> String {
    let script = vec!["Hello there, friend."; 75].join(" ");
    script[..1490].trim_end().to_string()
}

/// Writes the tiny setup into `dir/models` with `service` settings and stage timeouts (seconds,
/// audio/image/video/clip), and returns the config's path.
fn setup(dir: &Path, queue_max: i128, grace_s: f64, timeouts: [f64; 4]) -> PathBuf {
    let models = dir.join("models");
    std::fs::create_dir_all(dir).unwrap();
    let path = vortex_real::tiny::write_setup(&models, 0).unwrap();
    let mut config = Config::load(&path).unwrap();
    config.service.queue_max = vortex_real::config::QueueMax::new(queue_max).unwrap();
    config.service.shutdown_grace_s = vortex_real::config::GraceSeconds::new(grace_s).unwrap();
    config.service.out_dir = dir.join("slots");
    let s = |v| vortex::units::Seconds::new(v).unwrap();
    let t = &mut config.orchestration.timeouts;
    (t.audio, t.image, t.video, t.clip) = (s(timeouts[0]), s(timeouts[1]), s(timeouts[2]), s(timeouts[3]));
    std::fs::write(&path, config.to_yaml()).unwrap();
    path
}

/// Generous timeouts: no stage times out.
const EASY: [f64; 4] = [600.0, 600.0, 600.0, 600.0];

/// A running `vortex serve`; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts the binary and waits (bounded) for the address it prints.
    fn start(config: &Path) -> Server {
        let log = std::fs::File::create(config.with_file_name("serve.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vortex"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(300)).expect("the server prints its address");
        let url = line.trim().strip_prefix("vortex serve: listening on ").unwrap_or_else(|| panic!("{line:?}"));
        Server { url: url.to_string(), child }
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns whether it exited with 0.
    fn stop(mut self) -> bool {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM");
        for _ in 0..POLLS {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(POLL);
        }
        panic!("the server did not stop after SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

/// The status and body of a response (error statuses included).
fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Vec<u8>) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

fn post(url: &str, body: &str) -> (u16, Value) {
    let (status, body) =
        answer(agent().post(&format!("{url}/slots")).set("content-type", "application/json").send_string(body));
    (status, serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body))))
}

fn get(url: &str, path: &str) -> (u16, Vec<u8>) {
    answer(agent().get(&format!("{url}{path}")).call())
}

fn get_json(url: &str, path: &str) -> (u16, Value) {
    let (status, body) = get(url, path);
    (status, serde_json::from_slice(&body).unwrap())
}

/// A recipe request with a deadline an hour ahead (the tiny slots finish well within it).
fn request(slot_id: u64, script: &str) -> String {
    let deadline = humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    json!({ "recipe": { "slot_id": slot_id, "script": script, "prompt": "w1 w2 w3" }, "deadline": deadline.to_string() })
        .to_string()
}

/// Waits (bounded) until the slot has run, and returns `GET /slots/{id}`.
fn wait_done(url: &str, slot_id: u64) -> Value {
    for _ in 0..POLLS {
        let (status, body) = get_json(url, &format!("/slots/{slot_id}"));
        assert_eq!(status, 200, "{body}");
        if ["finished", "error"].contains(&body["status"].as_str().unwrap()) {
            return body;
        }
        std::thread::sleep(POLL);
    }
    panic!("slot {slot_id} did not finish");
}

/// Waits (bounded) until the slot is running.
fn wait_running(url: &str, slot_id: u64) {
    for _ in 0..POLLS {
        let (_, body) = get_json(url, &format!("/slots/{slot_id}"));
        match body["status"].as_str().unwrap() {
            "running" => return,
            "queued" => std::thread::sleep(POLL),
            other => panic!("slot {slot_id} is {other} before it was seen running"),
        }
    }
    panic!("slot {slot_id} never ran");
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A metric's value in the Prometheus text (the line that starts with `series `).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn recipes_are_answered_run_and_found_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 8, 30.0, EASY);
    let server = Server::start(&config);
    let url = server.url.clone();
    assert_eq!(get_json(&url, "/healthz"), (200, json!({ "status": "ok" })));

    let (status, body) = post(&url, &request(1, "Hello there."));
    assert_eq!(status, 202, "{body}");
    assert_eq!((body["slot_id"].as_u64(), body["status"].as_str()), (Some(1), Some("queued")));
    let (status, body) = post(&url, &request(1, "Hello again."));
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("recipe.slot_id: slot 1 is already taken"), "{body}");

    // Bad requests: 400 with the key named, and nothing queued.
    let bad = [
        (json!({ "recipe": { "slot_id": 2, "script": " ", "prompt": "w1" } }), "recipe.script: "),
        (
            json!({ "recipe": { "slot_id": 2, "script": "Hi.", "prompt": "w1", "voice": { "name": "zz" } } }),
            "recipe.voice.name: ",
        ),
        (
            json!({ "recipe": { "slot_id": 2, "script": "Hi.", "prompt": "w1", "voice": { "speed": 9.0 } } }),
            "recipe.voice.speed: ",
        ),
        (
            json!({ "recipe": { "slot_id": 2, "script": "Hi.", "prompt": "w1", "expression": { "preset": "odd" } } }),
            "recipe.expression.preset: ",
        ),
        (json!({ "recipe": { "slot_id": 2, "script": "Hi." } }), "recipe: "),
        (
            json!({ "recipe": { "slot_id": 2, "script": "Hi.", "prompt": "w1" }, "deadline": "soon" }),
            "deadline: \"soon\": ",
        ),
        (json!({ "recipe": { "slot_id": 2, "script": "Hi.", "prompt": "w1" }, "colour": 1 }), "colour: "),
    ];
    for (body, key) in bad {
        let (status, answer) = post(&url, &body.to_string());
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().starts_with(key), "{body}: {answer}");
    }
    let (status, answer) = post(&url, "{\"recipe\": ");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(get(&url, "/slots/2").0, 404, "a refused recipe is not queued");
    // 4 MB: far over the bound, and more than socket buffers hold, so the service must read it
    // (drain) to answer rather than close on the client mid-send.
    let huge = request(2, &"a ".repeat(2_000_000));
    let (status, answer) = post(&url, &huge);
    assert_eq!(status, 413, "a body over the bound");
    assert_eq!(answer["error"], "body: over 128 KiB; a recipe fits in far less", "{answer}");
    assert_eq!(get(&url, "/slots/x").0, 400);

    // A deadline already past: queued, then aborted by the predictor before it starts.
    let past =
        json!({ "recipe": { "slot_id": 3, "script": "Hi.", "prompt": "w1" }, "deadline": "2020-01-01T00:00:00Z" });
    assert_eq!(post(&url, &past.to_string()).0, 202);

    let one = wait_done(&url, 1);
    assert_eq!(one["outcome"], "delivered", "{one}");
    let result = &one["result"];
    assert_eq!(result["outcome"], "completed");
    assert_eq!(result["files"], json!(["audio.wav", "actor.png", "video.y4m", "events.jsonl"]));
    let three = wait_done(&url, 3);
    assert_eq!(
        (three["outcome"].as_str(), three["result"]["abort"]["checkpoint"].as_str()),
        (Some("aborted"), Some("before_start"))
    );
    assert_eq!(three["result"]["attempt_log"], json!([]), "nothing ran");

    let (status, wav) = get(&url, "/slots/1/audio");
    assert_eq!(status, 200);
    let wav = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    assert_eq!(
        (wav.spec().sample_rate, wav.len() as u64),
        (24_000, result["media"]["audio_samples"].as_u64().unwrap())
    );
    let (status, video) = get(&url, "/slots/1/video");
    assert_eq!(status, 200);
    assert!(video.starts_with(b"YUV4MPEG2 "), "a y4m clip without ffmpeg");
    let (status, events) = get(&url, "/slots/1/events");
    assert_eq!(status, 200);
    let events: Vec<RecordedEvent> =
        String::from_utf8(events).unwrap().lines().map(|l| RecordedEvent::from_json_line(l).unwrap()).collect();
    assert_eq!(events.first().unwrap().name, "slot_started");
    assert_eq!(events.last().unwrap().name, "slot_complete");
    assert!(events.iter().all(|e| e.field("slot_id") == Some("1")));
    let (status, answer) = get_json(&url, "/slots/3/video");
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().contains("aborted"), "{answer}");
    assert_eq!(get(&url, "/slots/99/audio").0, 404);

    let (status, text) = get(&url, "/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric(&text, "vortex_slots_total{outcome=\"delivered\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "vortex_slots_total{outcome=\"aborted\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "vortex_aborts_total{checkpoint=\"before_start\"}"), Some(1.0), "{text}");
    // The slot aborted with its deadline already past could not have made it: chance 0.
    assert_eq!(metric(&text, "vortex_false_aborts_estimated"), Some(0.0), "{text}");
    for stage in ["audio", "image", "video", "clip"] {
        assert_eq!(
            metric(&text, &format!("vortex_stage_latency_seconds_count{{stage=\"{stage}\"}}")),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(metric(&text, "vortex_slot_latency_seconds_count"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "vortex_queue_depth"), Some(0.0), "{text}");
    assert!(metric(&text, "vortex_vram_resident_bytes").unwrap() > 0.0, "{text}");
    assert!(text.contains("vortex_cancel_overrun_seconds{model=\"kokoro\"}"), "{text}");

    page_in_chromium(&url);

    assert!(server.stop(), "a clean exit on SIGTERM");
    assert_eq!(names(&dir.path().join("slots")), ["slot-1", "slot-3"], "nothing partial beside the slots");

    // Restarted, it finds both slots, refuses their ids, and serves their files.
    let server = Server::start(&config);
    let url = server.url.clone();
    let again = wait_done(&url, 1);
    assert_eq!(again["result"], one["result"], "the same result after the restart");
    assert_eq!(wait_done(&url, 3)["outcome"], "aborted");
    assert_eq!(post(&url, &request(1, "Hello.")).0, 409, "a slot finished before the restart keeps its id");
    assert_eq!(get(&url, "/slots/1/audio").0, 200);
    let (_, page) = get(&url, "/");
    assert!(String::from_utf8(page).unwrap().contains("<td class=\"delivered\">delivered</td>"));
    assert!(server.stop());
}

/// Loads the status page in headless Chromium (Debian's `chromium`); skipped, with the reason
/// printed, where it is not installed, unless `VORTEX_REQUIRE_CHROMIUM=1` (CI sets it: there a
/// missing browser is a failure, not a skip).
fn page_in_chromium(url: &str) {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }) else {
        assert!(
            std::env::var("VORTEX_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "VORTEX_REQUIRE_CHROMIUM=1 but no `chromium` on PATH (Debian: apt-get install chromium)"
        );
        println!("SKIPPED the status page in Chromium: no `chromium` on PATH (Debian: apt-get install chromium)");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{url}/"))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "chromium exits 0");
    let dom = String::from_utf8(output.stdout).unwrap();
    assert!(dom.contains("<title>Vortex director</title>"), "{dom}");
    assert!(dom.contains("<b id=\"running\">none</b>"), "{dom}");
    // Both slots are listed with their outcomes, and the latency table counts them.
    assert!(dom.contains("<td class=\"delivered\">delivered</td>") && dom.contains("<td>before_start</td>"), "{dom}");
    assert!(dom.contains("<th>total</th>"), "{dom}");
    assert!(dom.contains("id=\"vram\""), "{dom}");
}

#[test]
fn a_slot_timed_out_mid_stage_leaves_nothing_partial_and_the_next_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    // The video stage's timeout: the long script's clip takes several seconds in a debug build,
    // the short one's a few tens of milliseconds.
    let config = setup(dir.path(), 8, 30.0, [600.0, 600.0, 1.0, 600.0]);
    let server = Server::start(&config);
    let url = server.url.clone();
    assert_eq!(post(&url, &request(10, &long_script())).0, 202);
    assert_eq!(post(&url, &request(11, "Hello there.")).0, 202);
    let timed_out = wait_done(&url, 10);
    assert_eq!(timed_out["outcome"], "failed", "{timed_out}");
    let failure = &timed_out["result"]["failure"];
    assert_eq!(
        (failure["stage"].as_str(), failure["reason"].as_str()),
        (Some("video"), Some("timed_out")),
        "{failure}"
    );
    let next = wait_done(&url, 11);
    assert_eq!(next["outcome"], "delivered", "{next}");
    let slots = dir.path().join("slots");
    assert_eq!(names(&slots), ["slot-10", "slot-11"], "no staging folder is left");
    assert_eq!(names(&slots.join("slot-10")), ["events.jsonl", "result.json"], "a failed slot writes no media");
    let (_, text) = get(&url, "/metrics");
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric(&text, "vortex_slots_total{outcome=\"failed\"}"), Some(1.0), "{text}");
    // Retries counted as the result tells them (none are counted where none ran).
    let retries = metric(&text, "vortex_retries_total{stage=\"video\"}").unwrap_or(0.0);
    assert_eq!(Some(retries), failure["attempts"].as_f64().map(|a| a - 1.0), "{text}");
    assert!(server.stop());
}

#[test]
fn sigterm_mid_slot_cancels_it_after_the_grace_and_leaves_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 8, 0.0, EASY);
    let server = Server::start(&config);
    let url = server.url.clone();
    assert_eq!(post(&url, &request(20, &long_script())).0, 202);
    assert_eq!(post(&url, &request(21, "Hello there.")).0, 202);
    wait_running(&url, 20);
    assert!(server.stop(), "a clean exit on SIGTERM");
    assert_eq!(names(&dir.path().join("slots")), Vec::<String>::new(), "the cancelled slot wrote nothing");
    let log = std::fs::read_to_string(config.with_file_name("serve.log")).unwrap();
    assert!(log.contains("slot cancelled at shutdown"), "{log}");
    assert!(log.contains("queued slots dropped at shutdown"), "{log}");

    // With a grace to spare, the running slot finishes and is written whole before the exit.
    let config = setup(&dir.path().join("graceful"), 8, 600.0, EASY);
    let server = Server::start(&config);
    let url = server.url.clone();
    assert_eq!(post(&url, &request(22, "Hello there.")).0, 202);
    wait_running_or_done(&url, 22);
    assert!(server.stop());
    let slot = dir.path().join("graceful/slots/slot-22");
    assert_eq!(names(&slot), ["actor.png", "audio.wav", "events.jsonl", "result.json", "video.y4m"]);
}

/// Waits (bounded) until the slot has left the queue.
fn wait_running_or_done(url: &str, slot_id: u64) {
    for _ in 0..POLLS {
        let (_, body) = get_json(url, &format!("/slots/{slot_id}"));
        if body["status"] != "queued" {
            return;
        }
        std::thread::sleep(POLL);
    }
    panic!("slot {slot_id} never ran");
}

#[test]
fn a_burst_of_posts_is_held_to_the_queue_bound_and_no_accepted_slot_is_lost() {
    const BURST: u64 = 24;
    const QUEUE_MAX: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), QUEUE_MAX as i128, 30.0, EASY);
    let server = Server::start(&config);
    let url = server.url.clone();
    // The burst comes from this process's threads, all at once; the server is another process.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(BURST as usize));
    let posts: Vec<_> = (100..100 + BURST)
        .map(|id| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (id, post(&url, &request(id, "Hi there.")))
            })
        })
        .collect();
    let answers: Vec<(u64, (u16, Value))> = posts.into_iter().map(|p| p.join().unwrap()).collect();
    let accepted: Vec<u64> = answers.iter().filter(|(_, (s, _))| *s == 202).map(|(id, _)| *id).collect();
    let refused: Vec<&Value> = answers.iter().filter(|(_, (s, _))| *s == 429).map(|(_, (_, b))| b).collect();
    assert_eq!(
        accepted.len() + refused.len(),
        BURST as usize,
        "every post is accepted or refused as full: {answers:?}"
    );
    assert!(!refused.is_empty(), "a burst of {BURST} overflows a queue of {QUEUE_MAX}");
    assert!(refused[0]["error"].as_str().unwrap().contains("service.queue_max"), "{:?}", refused[0]);
    // The queue never held more than its bound: each acceptance reported its place in it.
    for (id, (status, body)) in &answers {
        if *status == 202 {
            let position = body["position"].as_u64().unwrap() as usize;
            assert!((1..=QUEUE_MAX).contains(&position), "slot {id} queued at {position}");
        }
    }
    for id in &accepted {
        assert_eq!(wait_done(&url, *id)["outcome"], "delivered", "accepted slot {id} ran");
    }
    for (id, (status, _)) in &answers {
        if *status == 429 {
            assert_eq!(get(&url, &format!("/slots/{id}")).0, 404, "a refused slot {id} is not kept");
        }
    }
    let (_, text) = get(&url, "/metrics");
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric(&text, "vortex_slots_total{outcome=\"delivered\"}"), Some(accepted.len() as f64), "{text}");
    assert_eq!(metric(&text, "vortex_queue_depth"), Some(0.0), "{text}");
    let mut expected: Vec<String> = accepted.iter().map(|id| format!("slot-{id}")).collect();
    expected.sort();
    assert_eq!(names(&dir.path().join("slots")), expected);
    assert!(server.stop());
}

#[test]
fn the_service_section_is_bounded_and_names_its_key() {
    let base = "orchestration: {}\n";
    let ok =
        Config::from_yaml_str("c.yaml", &format!("{base}service: {{ queue_max: 2, shutdown_grace_s: 0 }}\n")).unwrap();
    assert_eq!((ok.service.queue_max.get(), ok.service.out_dir.to_str()), (2, Some("slots")));
    for (body, needle) in [
        ("queue_max: 0", "queue_max"),
        ("queue_max: 1025", "from 1 to 1024"),
        ("shutdown_grace_s: 601", "from 0 to 600"),
        ("shutdown_grace_s: -1", "shutdown_grace_s"),
        ("colour: 1", "colour"),
    ] {
        let err = Config::from_yaml_str("c.yaml", &format!("{base}service: {{ {body} }}\n")).unwrap_err().to_string();
        assert!(err.contains("service") && err.contains(needle), "{body}: {err}");
    }
}

//! Kokoro's English text front end (`vortex_real::kokoro::g2p`): misaki-rs 0.8.0 without espeak
//! against Python misaki 0.9.4 (`misaki.en.G2P(trf=False, british=False, fallback=None)`, spaCy
//! `en_core_web_sm` 3.8.0) on the golden fixture `fixtures/kokoro_g2p/sentences.json` from
//! `tools/gen_kokoro_g2p_fixture.py` (run once by hand): 116 sentences in 16 categories.
//! Both sides run without espeak, so a word neither can pronounce is `❓` on both.
//!
//! Agreement is 1 − Σ Levenshtein(ours, misaki) / Σ max(len) over the phoneme characters of all
//! sentences, and the fraction of sentences that come out identical. Measured (2026-11-30):
//! 100.00% of phoneme characters and 116/116 sentences identical, overall and in every
//! category, with the three normalisations in `g2p.rs` (misaki-rs 0.8.0 alone: 98.04%, 101/116
//! identical; `currency` 82.11%, `years_dates` 96.15%, `times` 97.82%, `units_misc` 98.92%, the
//! other 12 categories 100%). The floors below sit a little under that, so a regression fails;
//! `cargo test -p vortex-real --test kokoro_g2p -- --nocapture` prints the table.
//!
//! Also: the vocabulary against Kokoro's config.json (`fixtures/kokoro_g2p/vocab.json`, copied by
//! the same script), chunking to the model's 510 ids at sentence, clause and word boundaries
//! with nothing lost, and refusals and odd input without a panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use vortex_real::kokoro::g2p::{
    ids, Chunk, G2p, G2pError, MAX_PHONEMES, MAX_TEXT_CHARS, MAX_WORD_CHARS, N_TOKEN, UNKNOWN, VOCAB,
};

/// Phoneme-character agreement over all sentences must stay at or above this.
const FLOOR_OVERALL: f64 = 0.998;
/// … and in every category at or above this.
const FLOOR_CATEGORY: f64 = 0.98;
/// The fraction of sentences identical to misaki must stay at or above this.
const FLOOR_IDENTICAL: f64 = 0.97;

/// One G2p for all tests: building it parses the embedded lexicons and tagger.
static G2P: LazyLock<G2p> = LazyLock::new(G2p::new);

fn fixture(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kokoro_g2p").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the fixture reads")).expect("the fixture parses")
}

#[test]
fn vocab_is_kokoros() {
    let want = fixture("vocab.json");
    assert_eq!(want["n_token"], N_TOKEN, "n_token");
    let want = want["vocab"].as_object().expect("a vocab object");
    assert_eq!(VOCAB.len(), 114);
    assert_eq!(want.len(), VOCAB.len(), "entries");
    for (phoneme, id) in VOCAB {
        assert_eq!(want.get(&phoneme.to_string()).and_then(|v| v.as_u64()), Some(u64::from(id)), "{phoneme:?}");
        assert!(id > 0 && id < N_TOKEN, "{phoneme:?} → {id}: 0 is the boundary token, ids are below n_token");
    }
    assert!(VOCAB.windows(2).all(|w| w[0].1 < w[1].1), "sorted by id, no id twice");
    // Spot checks against Kokoro's config.json.
    assert_eq!(ids(";:,.!?— …\"()“” "), [1, 2, 3, 4, 5, 6, 9, 16, 10, 11, 12, 13, 14, 15, 16]);
    assert_eq!(ids("hˈɛlO"), [50, 156, 86, 54, 31]);
    assert_eq!(ids("ᵻ↘ɾʔ"), [177, 173, 125, 148]);
}

#[test]
fn g2p_is_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<G2p>();
}

#[test]
fn ids_drop_what_is_not_in_the_vocab() {
    // As KModel.forward: `filter(lambda i: i is not None, map(self.vocab.get, phonemes))`.
    assert_eq!(ids(&format!("ɐ{UNKNOWN}b\u{0}\n\tc😀ʃ")), [70, 44, 45, 131]);
    assert_eq!(ids(""), Vec::<u32>::new());
    assert_eq!(ids(UNKNOWN), Vec::<u32>::new());
}

/// Levenshtein distance over chars.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[derive(Default)]
struct Tally {
    sentences: usize,
    identical: usize,
    distance: usize,
    length: usize,
}

impl Tally {
    fn add(&mut self, got: &str, want: &str) -> usize {
        let (got, want): (Vec<char>, Vec<char>) = (got.chars().collect(), want.chars().collect());
        let distance = levenshtein(&got, &want);
        self.sentences += 1;
        self.identical += usize::from(distance == 0);
        self.distance += distance;
        self.length += got.len().max(want.len());
        distance
    }

    fn agreement(&self) -> f64 {
        1. - self.distance as f64 / self.length.max(1) as f64
    }

    fn identical(&self) -> f64 {
        self.identical as f64 / self.sentences.max(1) as f64
    }
}

#[test]
fn agrees_with_python_misaki() {
    let doc = fixture("sentences.json");
    assert_eq!(doc["misaki"], "0.9.4");
    assert_eq!(doc["unk"], UNKNOWN);
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 60, "{} sentences", cases.len());
    // misaki-rs on its own, to show what the normalisations in g2p.rs change.
    let raw = misaki_rs::G2P::new(misaki_rs::Language::EnglishUS);

    let mut categories: BTreeMap<&str, (Tally, Tally)> = BTreeMap::new();
    let (mut total, mut total_raw, mut total_ids) = (Tally::default(), Tally::default(), Tally::default());
    let mut worst = Vec::new();
    for case in cases {
        let (category, text, want) =
            (case["category"].as_str().unwrap(), case["text"].as_str().unwrap(), case["phonemes"].as_str().unwrap());
        let got = G2P.phonemize(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let got_raw = raw.g2p(text).expect("misaki-rs").0;
        let (tally, tally_raw) = categories.entry(category).or_default();
        let distance = tally.add(&got, want);
        tally_raw.add(&got_raw, want);
        total.add(&got, want);
        total_raw.add(&got_raw, want);
        // What the model sees: the ids, with ❓ and anything else outside the vocab dropped.
        let as_text = |ids: Vec<u32>| ids.into_iter().filter_map(char::from_u32).collect::<String>();
        total_ids.add(&as_text(ids(&got)), &as_text(ids(want)));
        if distance > 0 {
            worst.push((distance, text, want.to_string(), got));
        }
    }

    println!("{:<14} {:>5} {:>10} {:>10} {:>12}", "category", "n", "identical", "agreement", "misaki-rs");
    for (category, (tally, raw)) in &categories {
        println!(
            "{category:<14} {:>5} {:>9.1}% {:>9.2}% {:>11.2}%",
            tally.sentences,
            100. * tally.identical(),
            100. * tally.agreement(),
            100. * raw.agreement()
        );
    }
    println!(
        "{:<14} {:>5} {:>9.1}% {:>9.2}% {:>11.2}%   (ids: {:.2}%; misaki-rs alone {}/{} identical)",
        "overall",
        total.sentences,
        100. * total.identical(),
        100. * total.agreement(),
        100. * total_raw.agreement(),
        100. * total_ids.agreement(),
        total_raw.identical,
        total_raw.sentences,
    );
    worst.sort_by_key(|w| std::cmp::Reverse(w.0));
    for (distance, text, want, got) in worst.iter().take(8) {
        println!("distance {distance}: {text}\n  misaki:  {want}\n  ours:    {got}");
    }

    assert!(total.agreement() >= FLOOR_OVERALL, "overall agreement {:.4}", total.agreement());
    assert!(total.identical() >= FLOOR_IDENTICAL, "identical {}/{}", total.identical, total.sentences);
    for (category, (tally, raw)) in &categories {
        assert!(tally.agreement() >= FLOOR_CATEGORY, "{category}: {:.4}", tally.agreement());
        assert!(tally.agreement() >= raw.agreement(), "{category}: the normalisations made it worse");
    }
}

/// Whitespace runs as one space, trimmed: how chunks write the space between tokens.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The checks every chunking must pass: within the limit, ids as `ids()` gives them, and
/// nothing lost: the phonemes and the texts, joined, are the whole text's.
fn check_chunks(text: &str, chunks: &[Chunk]) {
    let whole = G2P.phonemize(text).expect("phonemizes");
    assert!(!whole.contains(UNKNOWN), "test texts are fully pronounceable: {whole}");
    assert!(!chunks.is_empty());
    for chunk in chunks {
        assert!(!chunk.ids.is_empty() && chunk.ids.len() <= MAX_PHONEMES, "{} ids", chunk.ids.len());
        assert_eq!(chunk.ids, ids(&chunk.phonemes));
        assert_eq!(chunk.phonemes, chunk.phonemes.trim());
    }
    let joined: Vec<&str> = chunks.iter().map(|c| c.phonemes.as_str()).collect();
    assert_eq!(joined.join(" "), squeeze(&whole), "the chunks' phonemes are the whole text's");
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(squeeze(&texts.join(" ")), squeeze(text), "the chunks' texts are the whole text");
}

/// About 45 seconds of speech at ~160 words a minute: 120 words.
const SCRIPT_45S: &str = "Welcome back to the morning show. Today we are talking about the city's new \
    river park, which opened last weekend after nearly three years of construction. The park \
    stretches along the east bank for almost two miles, with walking trails, a playground, and a \
    small outdoor stage for summer concerts. Local families have already made it a favorite spot, \
    and the mayor says more than ten thousand people visited in the first two days alone. Not \
    everyone is happy, though. Some neighbors worry about traffic and parking on busy evenings. \
    The city plans to add a shuttle bus next month. We will hear from both sides after the break, \
    so stay with us.";

#[test]
fn a_45_second_script_splits_at_sentence_ends() {
    assert!((110..=130).contains(&SCRIPT_45S.split_whitespace().count()));
    let whole = ids(&G2P.phonemize(SCRIPT_45S).unwrap()).len();
    assert!(whole > MAX_PHONEMES, "the script needs more than one call: {whole} ids");
    let chunks = G2P.chunks(SCRIPT_45S).unwrap();
    check_chunks(SCRIPT_45S, &chunks);
    assert_eq!(chunks.len(), whole.div_ceil(MAX_PHONEMES).max(2), "packed: as few chunks as the sizes allow");
    for chunk in &chunks {
        assert!(chunk.text.ends_with(['.', '!', '?']), "ends a sentence: {:?}", chunk.text);
        assert!(chunk.phonemes.ends_with(['.', '!', '?']), "{:?}", chunk.phonemes);
    }
    for c in &chunks {
        println!("{} ids: {}", c.ids.len(), c.text);
    }
}

/// A 3,000-character text of sentences of different lengths, quotes and parentheses included.
fn text_3000() -> String {
    let sentences = [
        "The river rose slowly through the night.",
        "By morning, the lower streets were under water, and the bakery on the corner had closed its doors.",
        "\"We have seen worse,\" said the old fisherman, pointing at a mark on the wall (it read 1927).",
        "Nobody argued.",
        "Volunteers stacked sandbags along the bank; others carried furniture upstairs, or drove the elderly to the school on the hill.",
        "Was it enough?",
        "The forecast promised two more days of rain!",
    ];
    let mut text = String::new();
    let mut i = 0;
    while text.chars().count() < 3000 {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(sentences[i % sentences.len()]);
        i += 1;
    }
    text
}

#[test]
fn a_3000_character_text_splits_at_sentence_ends() {
    let text = text_3000();
    assert!(text.chars().count() >= 3000);
    let chunks = G2P.chunks(&text).unwrap();
    check_chunks(&text, &chunks);
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    for chunk in &chunks {
        assert!(chunk.text.ends_with(['.', '!', '?', '"', ')']), "ends a sentence: {:?}", chunk.text);
    }
    // Greedy packing: no two neighbours would have fitted in one call.
    for pair in chunks.windows(2) {
        assert!(pair[0].ids.len() + 1 + pair[1].ids.len() > MAX_PHONEMES);
    }
}

#[test]
fn a_sentence_too_long_splits_at_clauses_then_words() {
    // One sentence, clauses separated by commas, semicolons, colons and dashes.
    let clauses = [
        "the wind came down from the hills",
        "the birds fell silent in the hedges",
        "the farmer closed the gate behind the sheep",
        "the children ran home across the wet fields",
    ];
    let separators = [", ", "; ", ": ", " — "];
    let mut text = String::from("When evening came");
    for i in 0..40 {
        text.push_str(separators[i % separators.len()]);
        text.push_str(clauses[i % clauses.len()]);
    }
    text.push('.');
    let chunks = G2P.chunks(&text).unwrap();
    check_chunks(&text, &chunks);
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    for chunk in &chunks[..chunks.len() - 1] {
        assert!(chunk.text.ends_with([',', ';', ':', '—']), "ends a clause: {:?}", chunk.text);
    }

    // No punctuation at all: between words.
    let words = "the quick brown fox jumps over the lazy dog while the farmer sleeps ".repeat(20);
    let chunks = G2P.chunks(&words).unwrap();
    check_chunks(&words, &chunks);
    assert!(chunks.len() >= 2);
    for pair in chunks.windows(2) {
        assert!(pair[0].ids.len() + 1 + pair[1].ids.len() > MAX_PHONEMES, "packed");
    }
}

#[test]
fn a_single_token_over_the_limit_splits_inside_it() {
    // misaki spells an all-caps word letter by letter, `W` as dˌʌbᵊlju: 64 of them are one
    // token of 512 phonemes without a space, so it is cut between characters; the words
    // around it keep chunks of their own.
    let text = format!("Say {} now.", "W".repeat(64));
    let whole = G2P.phonemize(&text).unwrap();
    assert!(ids(&whole).len() > MAX_PHONEMES);
    let chunks = G2P.chunks(&text).unwrap();
    assert!(chunks.iter().all(|c| !c.ids.is_empty() && c.ids.len() <= MAX_PHONEMES && c.ids == ids(&c.phonemes)));
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let w = "W".repeat(64);
    assert_eq!(texts, ["Say", w.as_str(), "", "now."], "the token's text goes with its first piece");
    assert_eq!(chunks[1].ids.len(), MAX_PHONEMES);
    let joined = [chunks[0].phonemes.as_str(), " ", &chunks[1].phonemes, &chunks[2].phonemes, " ", &chunks[3].phonemes];
    assert_eq!(joined.concat(), squeeze(&whole));
}

#[test]
fn short_text_is_one_chunk() {
    let chunks = G2P.chunks("Hello, world!").unwrap();
    assert_eq!(
        chunks,
        [Chunk {
            text: "Hello, world!".into(), phonemes: "həlˈO, wˈɜɹld!".into(), ids: ids("həlˈO, wˈɜɹld!")
        }]
    );
}

#[test]
fn refuses_empty_too_long_and_unpronounceable_text() {
    let g = &*G2P;
    for empty in ["", " ", "\n\t \r\n"] {
        assert_eq!(g.phonemize(empty), Err(G2pError::Empty));
        assert_eq!(g.chunks(empty), Err(G2pError::Empty));
    }
    let long = "a".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(g.phonemize(&long), Err(G2pError::TooLong { chars: MAX_TEXT_CHARS + 1 }));
    assert_eq!(g.chunks(&long), Err(G2pError::TooLong { chars: MAX_TEXT_CHARS + 1 }));
    assert!(g.phonemize(&long).unwrap_err().to_string().contains("20000"));
    // Words: the limit is on runs without ASCII whitespace, in characters.
    let word = "é".repeat(MAX_WORD_CHARS + 1); // also shows MAX_TEXT_CHARS counts characters
    let text = format!("A {word} {}", "é".repeat(9_935));
    assert!(text.len() > MAX_TEXT_CHARS && text.chars().count() <= MAX_TEXT_CHARS);
    match g.phonemize(&text) {
        Err(G2pError::WordTooLong { word: w, chars }) => assert_eq!((w, chars), (word.clone(), MAX_WORD_CHARS + 1)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(g.chunks(&"😀".repeat(5000)), Err(G2pError::WordTooLong { chars: 5000, .. })));
    assert!(matches!(g.phonemize(&"?!".repeat(40)), Err(G2pError::WordTooLong { chars: 80, .. })));
    assert!(matches!(g.phonemize(&format!("x\u{a0}{}", "y".repeat(70))), Err(G2pError::WordTooLong { .. })));
    // At the limit, and split by tabs and newlines (which misaki-rs's tokenizer splits on too).
    assert!(!matches!(g.phonemize(&"W".repeat(MAX_WORD_CHARS)), Err(G2pError::WordTooLong { .. })));
    assert!(g.phonemize(&"ha\t".repeat(40)).is_ok());
    assert!(g.phonemize(&"ha\n".repeat(40)).is_ok());
    for nothing in ["😀", "qzxwv", "...", "!?", "\u{0}", "❓", "— — —", "\u{200b}\u{feff}"] {
        match g.phonemize(nothing) {
            Err(G2pError::Unpronounceable { text, .. }) => assert_eq!(text, nothing),
            other => panic!("{nothing:?}: {other:?}"),
        }
        assert!(matches!(g.chunks(nothing), Err(G2pError::Unpronounceable { .. })));
    }
}

#[test]
fn odd_input_never_panics() {
    let long_word = "supercalifragilistic".repeat(3);
    let long_digits = "9".repeat(MAX_WORD_CHARS);
    let long_punct = "?!".repeat(MAX_WORD_CHARS / 2);
    let mixed = "a😀b\u{0}c\u{7}d\u{1b}[31me\u{202e}f\u{301}g\u{fffd}h ".repeat(20);
    let inputs: Vec<&str> = vec![
        "😀 hello 👋🏽 world 🇫🇷",
        "\u{0}\u{1}\u{2}abc\u{7f}\u{9f}",
        "tab\there\r\nnew\u{b}line\u{c}feed\u{85}next\u{2028}sep",
        "zero\u{200b}width\u{200d}join\u{2060}er",
        "e\u{301}\u{301}\u{301}\u{301} n\u{303}o",
        "\u{202e}reversed\u{202c} and עברית and العربية",
        "日本語のテキスト and 中文 and 한국어",
        "ＦＵＬＬＷＩＤＴＨ ａｎｄ ①②③ ½ ² Ⅻ",
        "1234567890",
        "0",
        "-0.000",
        "1,2,3,4,5,6,7,8,9,0",
        "99999999999999999999999999999999",
        "3.14.15.92.65",
        "$$$ €€€ £ 100%%% #1 @2 &3",
        "$-5 and $.5 and $5. and £.",
        "1st 2nd 3rd 4th 101st 11th 12th 13th 0th",
        "[hello](/həlˈO/) [x](#cardinal#) [y](+2) [z]() [](/a/) [[[(((",
        "'''''\"\"\"\"‘’“”«»",
        "a-b-c-d--e---f",
        "U.S.A.B.C.D.E.F.G.H.",
        "Mr. Mrs. Dr. St. etc. vs. e.g. i.e.",
        "A",
        "I",
        "s",
        "'s",
        "n't",
        &long_word,
        &long_digits,
        &long_punct,
        &mixed,
    ];
    for input in inputs {
        let phonemes = G2P.phonemize(input);
        let chunks = G2P.chunks(input);
        match (&phonemes, &chunks) {
            (Ok(phonemes), Ok(chunks)) => {
                assert!(!ids(phonemes).is_empty(), "{input:?}");
                assert!(!chunks.is_empty(), "{input:?}");
                for chunk in chunks {
                    assert!(!chunk.ids.is_empty() && chunk.ids.len() <= MAX_PHONEMES, "{input:?}");
                }
            }
            (Err(G2pError::Misaki { reason, .. }), _) | (_, Err(G2pError::Misaki { reason, .. })) => {
                panic!("misaki-rs failed on {input:?}: {reason}")
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{input:?}"),
            _ => panic!("{input:?}: phonemize {phonemes:?} but chunks {chunks:?}"),
        }
        println!("{input:?} → {}", phonemes.unwrap_or_else(|e| e.to_string()));
    }
}

//! Kokoro's English text front end: text → phonemes → input ids, chunked for the model.
//!
//! Kokoro-82M was trained on the phonemes of Python misaki 0.9.4 (`misaki.en.G2P(trf=False,
//! british=False)`, American English, as `kokoro.KPipeline(lang_code='a')` builds it). This
//! module runs the Rust port [`misaki_rs`] (MIT) built **without** its default `espeak`
//! feature: espeak-ng is GPL and stays out of the build. misaki-rs embeds misaki's gold and
//! silver lexicons and ports the spaCy tokenizer and `en_core_web_sm` tagger that misaki's
//! homograph choice depends on, so no files are read at run time.
//!
//! Without espeak, a word found neither in the lexicons nor by misaki's rules (numbers,
//! currency, -s/-ed/-ing stemming, all-caps acronyms spelled out, …) is left unresolved and
//! written as [`UNKNOWN`] (`❓`), exactly as Python misaki does with `fallback=None`; that
//! character is not in Kokoro's vocabulary, so [`ids`] drops it and the word is silent.
//!
//! misaki-rs 0.8.0 differs from misaki 0.9.4 in three places the agreement test
//! (`real/tests/kokoro_g2p.rs`) found: plural numbers (`1990s`), a currency amount followed by
//! a scale word (`$5 million`) and the space before an unresolved piece of a word (`7:30`).
//! [`G2p`] fixes these on misaki's tokens; nothing else is changed. As in Python misaki, text
//! may carry misaki's markdown overrides (`[word](/phonemes/)`, `[word](+1)` for stress).
//!
//! The model takes `[0, *ids, 0]` with at most [`MAX_PHONEMES`] ids, so [`G2p::chunks`] splits
//! longer text: at sentence ends first, then at clause punctuation, then between words (and,
//! only for a single token whose phonemes alone exceed the limit, inside it), packing as much
//! as fits into each chunk.
//!
//! ```
//! use vortex_real::kokoro::g2p::{G2p, MAX_PHONEMES};
//!
//! let g2p = G2p::new(); // parses the embedded lexicons and tagger: build once, reuse
//! assert_eq!(g2p.phonemize("Hello, world!")?, "həlˈO, wˈɜɹld!");
//! for chunk in g2p.chunks("A long script. Sentence after sentence.")? {
//!     assert!(chunk.ids.len() <= MAX_PHONEMES); // the model's input is [0, ids…, 0]
//! }
//! # Ok::<(), vortex_real::kokoro::g2p::G2pError>(())
//! ```

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

use misaki_rs::{Language, MToken, G2P};

/// The most phoneme ids one model call takes: Kokoro's context is 512 including the two 0s.
pub const MAX_PHONEMES: usize = 510;

/// The longest text, in characters (Unicode scalar values), that [`G2p::phonemize`] and
/// [`G2p::chunks`] accept: about 20 minutes of speech, and with [`MAX_WORD_CHARS`] a bound on
/// the time one call takes. Longer text is refused with [`G2pError::TooLong`]; split it first.
///
/// Measured (2026-11-30, one core, release build): 20,000 characters of prose take 3.4 s;
/// adversarial text at both limits (runs of 64 symbols or emoji between spaces) 6–22 s.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// The longest run of characters without ASCII whitespace ("word") accepted, refused with
/// [`G2pError::WordTooLong`]. misaki-rs's tokenizer and misaki's word-group resolution are
/// super-linear in the length of such a run (about cubic: 800 emoji in a row take 15 s, 1,600
/// take 150 s, release build), so an unbounded run would let one request run for days. 64
/// covers English words, numbers, e-mail addresses and most URLs.
pub const MAX_WORD_CHARS: usize = 64;

/// What misaki writes for a word it cannot pronounce (Python misaki's default `unk`). Not in
/// [`VOCAB`]: [`ids`] drops it.
pub const UNKNOWN: &str = "❓";

/// The size of Kokoro's token embedding (`n_token` in its config.json): ids are below this.
pub const N_TOKEN: u32 = 178;

/// Kokoro-82M's phoneme → id map, the `vocab` of its config.json (kokoro_onnx 0.6.1 ships the
/// same file): 114 entries, ids 1–177 with gaps, 0 reserved for the boundary token that
/// surrounds every input. Ids 1–16 are punctuation, quotes and the space; the rest are phonemes,
/// stress and length marks and intonation arrows. Sorted by id.
pub const VOCAB: [(char, u32); 114] = [
    (';', 1),
    (':', 2),
    (',', 3),
    ('.', 4),
    ('!', 5),
    ('?', 6),
    ('\u{2014}', 9),  // — em dash
    ('\u{2026}', 10), // … ellipsis
    ('"', 11),
    ('(', 12),
    (')', 13),
    ('\u{201c}', 14), // “
    ('\u{201d}', 15), // ”
    (' ', 16),
    ('\u{303}', 17),  // combining tilde (nasalisation)
    ('\u{2a3}', 18),  // ʣ
    ('\u{2a5}', 19),  // ʥ
    ('\u{2a6}', 20),  // ʦ
    ('\u{2a8}', 21),  // ʨ
    ('\u{1d5d}', 22), // ᵝ
    ('\u{ab67}', 23), // ꭧ
    ('A', 24),
    ('I', 25),
    ('O', 31),
    ('Q', 33),
    ('S', 35),
    ('T', 36),
    ('W', 39),
    ('Y', 41),
    ('\u{1d4a}', 42), // ᵊ
    ('a', 43),
    ('b', 44),
    ('c', 45),
    ('d', 46),
    ('e', 47),
    ('f', 48),
    ('h', 50),
    ('i', 51),
    ('j', 52),
    ('k', 53),
    ('l', 54),
    ('m', 55),
    ('n', 56),
    ('o', 57),
    ('p', 58),
    ('q', 59),
    ('r', 60),
    ('s', 61),
    ('t', 62),
    ('u', 63),
    ('v', 64),
    ('w', 65),
    ('x', 66),
    ('y', 67),
    ('z', 68),
    ('\u{251}', 69),   // ɑ
    ('\u{250}', 70),   // ɐ
    ('\u{252}', 71),   // ɒ
    ('\u{e6}', 72),    // æ
    ('\u{3b2}', 75),   // β
    ('\u{254}', 76),   // ɔ
    ('\u{255}', 77),   // ɕ
    ('\u{e7}', 78),    // ç
    ('\u{256}', 80),   // ɖ
    ('\u{f0}', 81),    // ð
    ('\u{2a4}', 82),   // ʤ
    ('\u{259}', 83),   // ə
    ('\u{25a}', 85),   // ɚ
    ('\u{25b}', 86),   // ɛ
    ('\u{25c}', 87),   // ɜ
    ('\u{25f}', 90),   // ɟ
    ('\u{261}', 92),   // ɡ
    ('\u{265}', 99),   // ɥ
    ('\u{268}', 101),  // ɨ
    ('\u{26a}', 102),  // ɪ
    ('\u{29d}', 103),  // ʝ
    ('\u{26f}', 110),  // ɯ
    ('\u{270}', 111),  // ɰ
    ('\u{14b}', 112),  // ŋ
    ('\u{273}', 113),  // ɳ
    ('\u{272}', 114),  // ɲ
    ('\u{274}', 115),  // ɴ
    ('\u{f8}', 116),   // ø
    ('\u{278}', 118),  // ɸ
    ('\u{3b8}', 119),  // θ
    ('\u{153}', 120),  // œ
    ('\u{279}', 123),  // ɹ
    ('\u{27e}', 125),  // ɾ
    ('\u{27b}', 126),  // ɻ
    ('\u{281}', 128),  // ʁ
    ('\u{27d}', 129),  // ɽ
    ('\u{282}', 130),  // ʂ
    ('\u{283}', 131),  // ʃ
    ('\u{288}', 132),  // ʈ
    ('\u{2a7}', 133),  // ʧ
    ('\u{28a}', 135),  // ʊ
    ('\u{28b}', 136),  // ʋ
    ('\u{28c}', 138),  // ʌ
    ('\u{263}', 139),  // ɣ
    ('\u{264}', 140),  // ɤ
    ('\u{3c7}', 142),  // χ
    ('\u{28e}', 143),  // ʎ
    ('\u{292}', 147),  // ʒ
    ('\u{294}', 148),  // ʔ
    ('\u{2c8}', 156),  // ˈ primary stress
    ('\u{2cc}', 157),  // ˌ secondary stress
    ('\u{2d0}', 158),  // ː length
    ('\u{2b0}', 162),  // ʰ
    ('\u{2b2}', 164),  // ʲ
    ('\u{2193}', 169), // ↓
    ('\u{2192}', 171), // →
    ('\u{2197}', 172), // ↗
    ('\u{2198}', 173), // ↘
    ('\u{1d7b}', 177), // ᵻ
];

/// The largest id of punctuation, quotes and the space in [`VOCAB`]; larger ids are sounds.
const LAST_PUNCTUATION_ID: u32 = 16;

/// Kokoro's id for one phoneme character, `None` when the character is not in [`VOCAB`].
pub fn id(phoneme: char) -> Option<u32> {
    VOCAB.iter().find(|&&(c, _)| c == phoneme).map(|&(_, id)| id)
}

/// Kokoro's input ids for a phoneme string, without the boundary 0s. Characters not in
/// [`VOCAB`] (the [`UNKNOWN`] marker, control characters, anything else) are dropped, as
/// `KModel.forward` does (`filter(lambda i: i is not None, map(self.vocab.get, phonemes))`).
pub fn ids(phonemes: &str) -> Vec<u32> {
    phonemes.chars().filter_map(id).collect()
}

/// Why text could not be turned into phonemes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum G2pError {
    /// The text is empty or only whitespace.
    #[error("no text to speak: the text is empty or only whitespace")]
    Empty,
    /// The text is longer than [`MAX_TEXT_CHARS`].
    #[error("text of {chars} characters is over the maximum of {MAX_TEXT_CHARS}: split it before phonemizing")]
    TooLong {
        /// The text's length in characters.
        chars: usize,
    },
    /// The text has a run of more than [`MAX_WORD_CHARS`] characters without whitespace.
    #[error("a word of {chars} characters without whitespace is over the maximum of {MAX_WORD_CHARS}: {word:?}")]
    WordTooLong {
        /// The start of the word (at most 80 characters).
        word: String,
        /// Its length in characters.
        chars: usize,
    },
    /// Nothing in the text has a pronunciation: no phoneme of Kokoro's vocabulary came out,
    /// only punctuation, spaces or [`UNKNOWN`] markers (emoji, symbols, words misaki does
    /// not know and cannot spell without espeak).
    #[error("nothing to pronounce in {text:?}: its phonemes {phonemes:?} have no sound in Kokoro's vocabulary")]
    Unpronounceable {
        /// The start of the text (at most 80 characters).
        text: String,
        /// The start of misaki's phonemes for it (at most 80 characters).
        phonemes: String,
    },
    /// misaki-rs failed (it returned an error or panicked) on this text.
    #[error("misaki-rs failed on {text:?}: {reason}")]
    Misaki {
        /// The start of the text (at most 80 characters).
        text: String,
        /// What misaki-rs reported.
        reason: String,
    },
}

/// One model call's worth of text: at most [`MAX_PHONEMES`] ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The text these phonemes are for, with its outer whitespace trimmed.
    pub text: String,
    /// misaki's phonemes for this part of the text, trimmed, with each run of whitespace
    /// between tokens written as one space (as `KPipeline.en_tokenize` does). Unresolved words
    /// appear as [`UNKNOWN`] (`KPipeline` writes nothing for them; the ids are the same).
    pub phonemes: String,
    /// [`ids`]`(&phonemes)`: the model's input without the boundary 0s, 1 to [`MAX_PHONEMES`]
    /// long. Kokoro's pipeline picks the voice's style row by the phoneme count
    /// (`pack[len(ps) - 1]`), which is this length.
    pub ids: Vec<u32>,
}

/// English (American) grapheme-to-phoneme conversion for Kokoro. Building one parses the
/// embedded lexicons and tagger (19 MB of data: 0.4 s and about 100 MB resident in a release
/// build, 1.7 s in a debug one): make one and share it (`&self` methods; `Send + Sync`).
pub struct G2p {
    misaki: G2P,
    /// misaki's phonemes for "dollars", "pounds" and "euros", for `fix_currency_scale`.
    currency_units: [(&'static str, Option<String>); 3],
}

impl Default for G2p {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for G2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("G2p").field("language", &"en-US").field("fallback", &"none").finish()
    }
}

/// One of misaki's tokens, as the chunker needs it.
struct Token {
    /// Its text and the whitespace after it, as in the input.
    text: String,
    /// Its phonemes, [`UNKNOWN`] when unresolved.
    phonemes: String,
    /// Whether whitespace follows it.
    space: bool,
    /// Whether a chunk may end after it, and how good a place that is.
    boundary: Boundary,
}

/// Places to split, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    /// After `.`, `!`, `?` or `…` (and any closing quote or bracket attached to it).
    Sentence,
    /// After `,`, `;`, `:` or a dash.
    Clause,
    /// After a token followed by whitespace.
    Word,
    /// Not a place to split (inside a word, or before attached punctuation).
    None,
}

impl G2p {
    /// American English, no espeak fallback: misaki 0.9.4's `G2P(trf=False, british=False,
    /// fallback=None)`.
    pub fn new() -> Self {
        let mut misaki = G2P::new(Language::EnglishUS);
        misaki.unk = UNKNOWN.to_string();
        // misaki's `append_currency` says `stem_s(unit + 's')`: the lexicon's plural.
        let unit = |word: &str| {
            catch_unwind(AssertUnwindSafe(|| misaki.g2p(word)))
                .ok()
                .and_then(Result::ok)
                .map(|(ps, _)| ps.trim().to_string())
                .filter(|ps| !ps.is_empty() && !ps.contains(UNKNOWN))
        };
        let currency_units = [("$", unit("dollars")), ("£", unit("pounds")), ("€", unit("euros"))];
        Self { misaki, currency_units }
    }

    /// misaki's phoneme string for `text`: what Python misaki 0.9.4's `G2P(trf=False,
    /// british=False, fallback=None)(text)[0]` gives, the whitespace of the input kept between
    /// tokens and [`UNKNOWN`] for words it cannot pronounce. [`ids`] turns it into model input;
    /// text longer than [`MAX_PHONEMES`] ids needs [`G2p::chunks`].
    ///
    /// Errors: [`G2pError::Empty`], [`G2pError::TooLong`], [`G2pError::WordTooLong`],
    /// [`G2pError::Unpronounceable`] and, should misaki-rs fail, [`G2pError::Misaki`].
    pub fn phonemize(&self, text: &str) -> Result<String, G2pError> {
        let (phonemes, _) = self.run(text)?;
        Ok(phonemes)
    }

    /// `text` split into chunks of at most [`MAX_PHONEMES`] ids each, in order, for one model
    /// call each. Text that fits is one chunk. Longer text is phonemized whole (so that every
    /// word has its context, as in [`G2p::phonemize`]) and then cut between misaki's tokens:
    /// into sentences, packed greedily as many to a chunk as fit; a sentence too long alone is
    /// cut at its clause punctuation (`,` `;` `:` dashes) and packed the same way; a clause too
    /// long at the spaces between words; and a single token whose phonemes exceed the limit
    /// (64 capitals spelled out) at the spaces inside its phonemes, or else between characters,
    /// its text going with the first piece and the words around it in chunks of their own.
    /// Nothing is lost: the chunks' phonemes joined with spaces (none inside a cut token) are
    /// the whole text's phonemes with each whitespace run written as one space. Chunks with no
    /// ids (only unknown words) are left out.
    ///
    /// Errors as [`G2p::phonemize`].
    pub fn chunks(&self, text: &str) -> Result<Vec<Chunk>, G2pError> {
        let (_, tokens) = self.run(text)?;
        let mut ranges = Vec::new();
        split(&tokens, 0..tokens.len(), Boundary::Sentence, &mut ranges);
        let mut chunks = Vec::with_capacity(ranges.len());
        for range in ranges {
            let phonemes = render(&tokens[range.clone()]);
            let text = tokens[range].iter().map(|t| t.text.as_str()).collect::<String>().trim().to_string();
            if ids(&phonemes).len() <= MAX_PHONEMES {
                chunks.push(chunk(text, phonemes));
            } else {
                // One token alone over the limit: cut its phonemes; its text goes with the first piece.
                let mut text = Some(text);
                for piece in split_phonemes(&phonemes) {
                    chunks.push(chunk(text.take().unwrap_or_default(), piece));
                }
            }
        }
        chunks.retain(|c| !c.ids.is_empty());
        Ok(chunks)
    }

    /// Checks `text`, runs misaki-rs (containing any panic), checks the result has a sound,
    /// and returns the phoneme string with the tokens the chunker needs.
    fn run(&self, text: &str) -> Result<(String, Vec<Token>), G2pError> {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(G2pError::TooLong { chars });
        }
        if text.trim().is_empty() {
            return Err(G2pError::Empty);
        }
        // The runs misaki-rs's tokenizer splits on (`u8::is_ascii_whitespace`).
        if let Some((word, chars)) = text
            .split(|c: char| c.is_ascii_whitespace())
            .map(|w| (w, w.chars().count()))
            .find(|&(_, n)| n > MAX_WORD_CHARS)
        {
            return Err(G2pError::WordTooLong { word: start(word), chars });
        }
        let result = catch_unwind(AssertUnwindSafe(|| self.misaki.g2p(text)));
        let (_, mut mtokens) = match result {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(G2pError::Misaki { text: start(text), reason: e.to_string() }),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".to_string());
                return Err(G2pError::Misaki { text: start(text), reason: format!("panicked: {reason}") });
            }
        };
        self.normalise(&mut mtokens);
        // misaki's own assembly (`G2P.__call__`): each token's phonemes, `unk` when
        // unresolved, then the whitespace that followed it in the text.
        let phonemes: String =
            mtokens.iter().map(|t| format!("{}{}", t.phonemes.as_deref().unwrap_or(UNKNOWN), t.whitespace)).collect();
        if !ids(&phonemes).iter().any(|&id| id > LAST_PUNCTUATION_ID) {
            return Err(G2pError::Unpronounceable { text: start(text), phonemes: start(&phonemes) });
        }
        let mut tokens: Vec<Token> = mtokens
            .into_iter()
            .map(|t| Token {
                space: !t.whitespace.is_empty(),
                phonemes: t.phonemes.unwrap_or_else(|| UNKNOWN.to_string()),
                text: t.text + &t.whitespace,
                boundary: Boundary::None,
            })
            .collect();
        mark_boundaries(&mut tokens);
        Ok((phonemes, tokens))
    }
}

/// Where misaki-rs 0.8.0 differs from Python misaki 0.9.4, found by the agreement test
/// (`real/tests/kokoro_g2p.rs`), each fixed on misaki's tokens after it has resolved them.
/// These are the only changes made to its output.
impl G2p {
    fn normalise(&self, tokens: &mut [MToken]) {
        for t in tokens.iter_mut() {
            if let Some(ps) = t.phonemes.as_mut() {
                Self::fix_unknown_space(ps);
                if let Some(fixed) = self.fix_number_plural(&t.text, ps) {
                    *ps = fixed;
                }
            }
        }
        self.fix_currency_scale(tokens);
    }

    /// An unresolved piece inside a word (`7:30`'s colon, `5kg`'s `kg`, `°`): misaki's
    /// `merge_tokens` puts a space before a piece only when that piece has phonemes, so it
    /// writes `sˈɛvən❓ θˈɜɹTi`; misaki-rs writes `sˈɛvən ❓ θˈɜɹTi` (one extra space id).
    fn fix_unknown_space(ps: &mut String) {
        let spaced = format!(" {UNKNOWN}");
        if ps.contains(&spaced) {
            *ps = ps.replace(&spaced, UNKNOWN);
        }
    }

    /// A number with a plural `s` (`1990s`, `the '60s`, `mid-1800s`, `1970's`): misaki's
    /// `get_number` peels the suffix and pluralises the last number word (`nˌIntˈin
    /// nˈIndiz`); misaki-rs reads the `s` as the letter (`nˌIntˈin nˈIndi ˈɛs`, or `… s` after
    /// an apostrophe). Returns the fixed phonemes, `None` when this is not the case.
    fn fix_number_plural(&self, text: &str, ps: &str) -> Option<String> {
        let text = text.replace(['\u{2018}', '\u{2019}'], "'");
        let (number, letter) = match text.strip_suffix("'s") {
            Some(number) => (number, " s"),
            None => (text.strip_suffix('s')?, " \u{2c8}\u{25b}s"), // " ˈɛs"
        };
        if !number.ends_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let stem = ps.strip_suffix(letter).filter(|stem| !stem.is_empty() && !stem.ends_with(' '))?;
        Some(self.misaki.lexicon.append_s(stem))
    }

    /// A currency amount followed by scale words (`$5 million`, `£3.5 million`, `$2 billion`):
    /// misaki's `retokenize` keeps the currency while spaCy's tags stay `CD` and gives it to
    /// the last of them, so the number is read plainly and the unit comes last (`fˈIv mˈɪljᵊn
    /// dˈɑləɹz`, `θɹˈi pYnt fˈIv mˈɪljᵊn pˈWndz`); misaki-rs gives it to the number (`fˈIv
    /// dˈɑləɹz mˈɪljᵊn`, `θɹˈi pˈWndz ænd fˈIv pˈɛns mˈɪljᵊn`). Fixed only when the `CD`
    /// tokens after the number are words with phonemes; the number is then read on its own.
    fn fix_currency_scale(&self, tokens: &mut [MToken]) {
        let mut i = 0;
        while i + 2 < tokens.len() {
            let symbol = &tokens[i];
            let unit = self
                .currency_units
                .iter()
                .find(|(sym, _)| *sym == symbol.text)
                .and_then(|(_, unit)| unit.as_ref())
                .filter(|_| symbol.tag == "$" && symbol.phonemes.as_deref() == Some(""));
            let number = i + 1;
            let (Some(unit), true) = (unit, tokens[number].tag == "CD" && tokens[number].phonemes.is_some()) else {
                i += 1;
                continue;
            };
            let mut last = number;
            while last + 1 < tokens.len() && tokens[last + 1].tag == "CD" {
                last += 1;
            }
            let words = &tokens[number + 1..=last];
            let all_words = !words.is_empty()
                && words.iter().all(|t| {
                    t.text.chars().all(char::is_alphabetic)
                        && t.phonemes.as_deref().is_some_and(|ps| !ps.is_empty() && !ps.contains(UNKNOWN))
                });
            let plain = if all_words { self.plain_number(&tokens[number].text) } else { None };
            if let Some(plain) = plain {
                let unit = unit.clone();
                tokens[number].phonemes = Some(plain);
                if let Some(ps) = tokens[last].phonemes.as_mut() {
                    ps.push(' ');
                    ps.push_str(&unit);
                }
            }
            i = last + 1;
        }
    }

    /// misaki's reading of a number on its own, without a currency (`2.5` → `tˈu pYnt fˈIv`).
    fn plain_number(&self, number: &str) -> Option<String> {
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.') {
            return None;
        }
        let (ps, _) = catch_unwind(AssertUnwindSafe(|| self.misaki.g2p(number))).ok()?.ok()?;
        let ps = ps.trim();
        (!ps.is_empty() && !ps.contains(UNKNOWN)).then(|| ps.to_string())
    }
}

/// At most the first 80 characters of `s`, for error messages.
fn start(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn chunk(text: String, phonemes: String) -> Chunk {
    let ids = ids(&phonemes);
    Chunk { text, phonemes, ids }
}

/// The phonemes of consecutive tokens as a chunk: each token's phonemes, one space after each
/// token followed by whitespace, trimmed (`KPipeline.tokens_to_ps`).
fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    for t in tokens {
        out.push_str(&t.phonemes);
        if t.space {
            out.push(' ');
        }
    }
    out.trim().to_string()
}

/// The number of ids `tokens` make as one chunk.
fn cost(tokens: &[Token]) -> usize {
    ids(&render(tokens)).len()
}

/// Marks where a chunk may end. A token is a sentence or clause end by its text (misaki's
/// phonemes for punctuation are the punctuation, but `-` between spaces has none); closing
/// quotes and brackets written right after the punctuation stay with it (`KPipeline`'s
/// "bumps"), and nothing splits where no whitespace follows.
fn mark_boundaries(tokens: &mut [Token]) {
    let n = tokens.len();
    let mut i = 0;
    while i < n {
        let word = tokens[i].text.trim();
        let kind = if is_made_of(word, &['.', '!', '?', '…']) {
            Boundary::Sentence
        } else if is_made_of(word, &[',', ';', ':', '—', '–', '-']) {
            Boundary::Clause
        } else {
            Boundary::Word
        };
        // The closing quotes and brackets attached to this token (no whitespace in between).
        let mut last = i;
        while kind != Boundary::Word
            && !tokens[last].space
            && last + 1 < n
            && is_made_of(tokens[last + 1].text.trim(), &['"', '\'', '”', '’', ')', ']', '}', '»'])
        {
            last += 1;
        }
        for t in &mut tokens[i..last] {
            t.boundary = Boundary::None;
        }
        tokens[last].boundary = if kind == Boundary::Word && !tokens[last].space { Boundary::None } else { kind };
        i = last + 1;
    }
}

/// Whether `s` is non-empty and every character of it is one of `set`.
fn is_made_of(s: &str, set: &[char]) -> bool {
    !s.is_empty() && s.chars().all(|c| set.contains(&c))
}

/// Splits `range` of `tokens` into chunk ranges of at most [`MAX_PHONEMES`] ids: cut after
/// tokens marked `level` or better, pack the pieces greedily, and split a piece too long alone
/// at the next level. A range left over [`MAX_PHONEMES`] is a single unsplittable token run.
fn split(tokens: &[Token], range: Range<usize>, level: Boundary, out: &mut Vec<Range<usize>>) {
    if range.is_empty() {
        return;
    }
    if cost(&tokens[range.clone()]) <= MAX_PHONEMES || level == Boundary::None {
        out.push(range);
        return;
    }
    let finer = match level {
        Boundary::Sentence => Boundary::Clause,
        Boundary::Clause => Boundary::Word,
        Boundary::Word | Boundary::None => Boundary::None,
    };
    let mut current: Option<Range<usize>> = None;
    let mut piece_start = range.start;
    for i in range.clone() {
        if tokens[i].boundary > level && i + 1 < range.end {
            continue;
        }
        let piece = piece_start..i + 1;
        piece_start = i + 1;
        if cost(&tokens[piece.clone()]) > MAX_PHONEMES {
            out.extend(current.take());
            split(tokens, piece, finer, out);
            continue;
        }
        current = match current.take() {
            None => Some(piece),
            Some(c) if cost(&tokens[c.start..piece.end]) <= MAX_PHONEMES => Some(c.start..piece.end),
            Some(c) => {
                out.push(c);
                Some(piece)
            }
        };
    }
    out.extend(current);
}

/// Cuts one token's phoneme string that is over [`MAX_PHONEMES`] ids into pieces that fit:
/// at its spaces when it has them, else between characters.
fn split_phonemes(phonemes: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_ids = 0;
    for word in phonemes.split(' ').filter(|w| !w.is_empty()) {
        let word_ids = ids(word).len();
        if !current.is_empty() && current_ids + 1 + word_ids <= MAX_PHONEMES {
            current.push(' ');
            current.push_str(word);
            current_ids += 1 + word_ids;
            continue;
        }
        if !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
            current_ids = 0;
        }
        if word_ids <= MAX_PHONEMES {
            current.push_str(word);
            current_ids = word_ids;
            continue;
        }
        // A single space-free run over the limit: cut between characters.
        for c in word.chars() {
            let c_ids = usize::from(id(c).is_some());
            if current_ids + c_ids > MAX_PHONEMES {
                pieces.push(std::mem::take(&mut current));
                current_ids = 0;
            }
            current.push(c);
            current_ids += c_ids;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

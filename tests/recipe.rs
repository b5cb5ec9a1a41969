//! Recipe files: the documented example loads, defaults fill optional keys, and every kind of
//! bad recipe is refused with an error that names the file, the key and the bad value.

use std::path::Path;

use vortex::recipe::{
    Recipe, EXPRESSION_PRESETS, MAX_PROMPT_CHARS, MAX_RECIPE_BYTES, MAX_SCRIPT_CHARS, MAX_WORD_CHARS, SPEED_RANGE,
};
use vortex::ConfigError;

const GOOD: &str = "slot_id: 3\nscript: Hello there.\nprompt: a news anchor\n";

fn refused(text: &str) -> String {
    match Recipe::parse("r.yaml", text) {
        Ok(r) => panic!("accepted a bad recipe: {r:?}"),
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn the_documented_example_loads_and_passes_validation() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recipe.example.yaml");
    let recipe = Recipe::load(&path).unwrap();
    assert_eq!(recipe.slot_id, 42);
    assert_eq!(recipe.expression.preset, "calm");
    assert!(recipe.script.starts_with("Good evening.") && !recipe.script.ends_with('\n'), "{:?}", recipe.script);
    recipe.validate().unwrap();
}

#[test]
fn optional_keys_take_their_defaults_and_json_reads_too() {
    let recipe = Recipe::parse("r.yaml", GOOD).unwrap();
    let defaults = Recipe { seed: 0, ..Recipe::new(3, "Hello there.", "a news anchor") };
    assert_eq!(recipe, defaults);
    let json = r#"{"slot_id": 3, "script": "Hi.", "prompt": "p", "voice": {"name": "am_adam"}, "expression": {"intensity": 1}}"#;
    let recipe = Recipe::parse("r.json", json).unwrap();
    assert_eq!((recipe.voice.name.as_str(), recipe.voice.speed), ("am_adam", 1.0));
    assert_eq!((recipe.expression.preset.as_str(), recipe.expression.intensity), ("neutral", 1.0));
    // What the scheduler and the simulator serialise reads back unchanged.
    let back = Recipe::parse("r.json", &serde_json::to_string(&recipe).unwrap()).unwrap();
    assert_eq!(back, recipe);
}

#[test]
fn missing_and_unknown_keys_are_named() {
    let err = refused("slot_id: 3\nprompt: p\n");
    assert!(err.starts_with("r.yaml: (top level): missing field `script`"), "{err}");
    let err = refused(&format!("{GOOD}voice: {{name: af_heart, pitch: 2}}\n"));
    assert!(err.starts_with("r.yaml: voice.pitch: unknown field `pitch`, expected `name` or `speed`"), "{err}");
    let err = refused("slot_id: -1\nscript: a\nprompt: b\n");
    assert!(err.starts_with("r.yaml: slot_id: invalid type: integer `-1`"), "{err}");
    let err = refused("- 1\n");
    assert!(err.contains("expected a recipe: a map with slot_id"), "{err}");
}

#[test]
fn bad_texts_are_refused_with_the_key_and_the_bound() {
    for (text, want) in [
        ("slot_id: 3\nscript: ''\nprompt: p\n", "r.yaml: script: is empty; expected text to speak"),
        ("slot_id: 3\nscript: \"  \\n\"\nprompt: p\n", "r.yaml: script: is only whitespace; expected text to speak"),
        ("slot_id: 3\nscript: hi\nprompt: ''\n", "r.yaml: prompt: is empty; expected text to show"),
        (
            "slot_id: 3\nscript: \"a\\0b\"\nprompt: p\n",
            "r.yaml: script: holds the control character \\u{0} at character 1; only line breaks and tabs are allowed",
        ),
    ] {
        assert_eq!(refused(text), want);
    }
    let word = "x".repeat(MAX_WORD_CHARS + 1);
    let err = refused(&format!("slot_id: 3\nscript: see {word} now\nprompt: p\n"));
    let want = format!(
        "r.yaml: script: a word of 65 characters without a space (\"{word}\"); at most 64 are spoken as one word"
    );
    assert_eq!(err, want);
    Recipe::parse("r.yaml", &format!("slot_id: 3\nscript: see {} now\nprompt: p\n", &word[1..])).unwrap();
    let long = "é ".repeat(MAX_SCRIPT_CHARS / 2) + "é";
    let err = refused(&format!("slot_id: 3\nscript: {long}\nprompt: p\n"));
    assert_eq!(
        err,
        format!("r.yaml: script: {} characters; at most {MAX_SCRIPT_CHARS} are allowed", MAX_SCRIPT_CHARS + 1)
    );
    // The bound counts characters, not bytes: the longest script of two-byte characters passes.
    let longest = "é ".repeat(MAX_SCRIPT_CHARS / 2 - 1) + "éé";
    assert_eq!(longest.chars().count(), MAX_SCRIPT_CHARS);
    Recipe::parse("r.yaml", &format!("slot_id: 3\nscript: \"{longest}\"\nprompt: p\n")).unwrap();
    let err = refused(&format!("slot_id: 3\nscript: hi\nprompt: {}\n", "x".repeat(MAX_PROMPT_CHARS + 1)));
    assert!(
        err.starts_with(&format!("r.yaml: prompt: {} characters; at most {MAX_PROMPT_CHARS}", MAX_PROMPT_CHARS + 1))
    );
}

#[test]
fn voices_speeds_presets_and_intensities_out_of_range_are_refused() {
    let with = |extra: &str| refused(&format!("{GOOD}{extra}\n"));
    let (lo, hi) = SPEED_RANGE;
    for speed in [lo - 0.01, hi + 0.01, -1.0, 0.0] {
        let err = with(&format!("voice: {{speed: {speed}}}"));
        assert_eq!(err, format!("r.yaml: voice.speed: {speed}: expected a speed from {lo} to {hi} (1 is normal)"));
    }
    for speed in [".nan", ".inf", "-.inf"] {
        assert!(with(&format!("voice: {{speed: {speed}}}")).starts_with("r.yaml: voice.speed: "), "{speed}");
    }
    let err = with("voice: {name: ''}");
    assert_eq!(err, "r.yaml: voice.name: \"\": expected a voice name of 1 to 64 characters");
    let err = with("voice: {name: ../etc/passwd}");
    assert!(err.starts_with("r.yaml: voice.name: \"../etc/passwd\": expected a voice name of letters"), "{err}");
    let err = with("expression: {preset: sleepy}");
    assert_eq!(
        err,
        format!("r.yaml: expression.preset: \"sleepy\": expected one of {}", EXPRESSION_PRESETS.join(", "))
    );
    for intensity in ["-0.1", "1.5", ".nan"] {
        let err = with(&format!("expression: {{intensity: {intensity}}}"));
        assert!(
            err.starts_with("r.yaml: expression.intensity: ") && err.ends_with("expected a number from 0 to 1"),
            "{err}"
        );
    }
    // The edges of every range are accepted.
    let edges = format!("{GOOD}voice: {{speed: {lo}}}\nexpression: {{preset: manic, intensity: 0}}\n");
    Recipe::parse("r.yaml", &edges).unwrap();
    Recipe::parse("r.yaml", &format!("{GOOD}voice: {{speed: {hi}}}\nexpression: {{intensity: 1}}\n")).unwrap();
}

#[test]
fn oversized_and_odd_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, format!("{GOOD}# {}\n", "x".repeat(MAX_RECIPE_BYTES as usize))).unwrap();
    let err = Recipe::load(&big).unwrap_err().to_string();
    assert!(err.contains("larger than the limit of 65536 bytes"), "{err}");
    let err = Recipe::load(dir.path()).unwrap_err().to_string();
    assert!(err.ends_with("(file): is a directory, expected a file"), "{err}");
    let err = Recipe::load(&dir.path().join("missing.yaml")).unwrap_err().to_string();
    assert!(err.contains("missing.yaml: cannot read"), "{err}");
    let err = refused(&format!("{GOOD}seed: !x 3\n"));
    assert!(err.contains("YAML tags such as !x are not supported"), "{err}");
}

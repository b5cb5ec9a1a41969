//! Kokoro voice packs (`vortex_real::kokoro::voices`): the published layouts read to the same
//! table, rows picked by utterance length, and malformed files refused with the file named.

use std::io::Write;
use std::path::Path;

use vortex_real::kokoro::voices::{VoiceError, Voices, ROWS, STYLE_DIM};

/// A voice table whose every value tells its row and column apart.
fn table(tag: f32) -> Vec<f32> {
    (0..ROWS * STYLE_DIM).map(|i| tag + (i / STYLE_DIM) as f32 + (i % STYLE_DIM) as f32 / 1000.).collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A `.npy` file as NumPy 1.0 writes it: magic, version, header padded to 64 bytes, data.
fn npy(values: &[f32], shape: &str, descr: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&le_bytes(values));
    out
}

fn npz(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(*name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn error(path: &Path) -> String {
    match Voices::open(path) {
        Ok(v) => panic!("accepted {}: {:?}", path.display(), v.names().collect::<Vec<_>>()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn raw_npy_and_npz_layouts_read_to_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("af_heart.bin"), le_bytes(&table(0.))).unwrap();
    std::fs::write(dir.path().join("am_adam.npy"), npy(&table(1.), "(510, 1, 256)", "<f4")).unwrap();
    std::fs::write(dir.path().join("README.txt"), "not a voice").unwrap();
    let folder = Voices::open(dir.path()).unwrap();
    assert_eq!(folder.names().collect::<Vec<_>>(), ["af_heart", "am_adam"]);

    let archive = dir.path().join("voices-v1.0.bin");
    npz(
        &archive,
        &[
            ("af_heart.npy", npy(&table(0.), "(510, 1, 256)", "<f4")),
            ("am_adam.npy", npy(&table(1.), "(510, 256)", "<f4")),
        ],
    );
    let packed = Voices::open(&archive).unwrap();
    for voice in ["af_heart", "am_adam"] {
        for phonemes in [1, 2, 100, 510] {
            assert_eq!(folder.style(voice, phonemes).unwrap(), packed.style(voice, phonemes).unwrap());
        }
    }
    // Row n − 1 for n phonemes, clamped to the table at both ends.
    let tag = |v: &Voices, n| v.style("af_heart", n).unwrap()[0];
    assert_eq!((tag(&folder, 1), tag(&folder, 42), tag(&folder, 510)), (0., 41., 509.));
    assert_eq!((tag(&folder, 0), tag(&folder, 9999)), (0., 509.));
    assert_eq!(folder.style("am_adam", 3).unwrap()[5], 1. + 2. + 0.005);
}

#[test]
fn an_unknown_voice_names_the_ones_there_are() {
    let voices = Voices::from_tables([("af_heart".to_string(), table(0.)), ("bf_emma".to_string(), table(0.))]);
    let message = voices.style("af_hart", 10).unwrap_err().to_string();
    assert_eq!(message, "unknown voice \"af_hart\"; available: af_heart, bf_emma");
    assert!(matches!(voices.check("nobody"), Err(VoiceError::Unknown { .. })));
}

#[test]
fn malformed_voice_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, bytes: Vec<u8>| {
        let sub = dir.path().join(name.replace('.', "_"));
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join(name), bytes).unwrap();
        error(&sub)
    };
    let short = case("short.bin", le_bytes(&table(0.))[..1000].to_vec());
    assert!(short.contains("short.bin: 1000 bytes; a raw voice is 510 × 256 float32 = 522240 bytes"), "{short}");
    let mut values = table(0.);
    values[777] = f32::NAN;
    let nan = case("nan.bin", le_bytes(&values));
    assert!(nan.contains("nan.bin: voice: value 777 is NaN"), "{nan}");
    let shape = case("wide.npy", npy(&table(0.), "(510, 2, 128)", "<f4"));
    assert!(shape.contains("wide.npy: voice: shape is not (510, 1, 256) or (510, 256)"), "{shape}");
    let dtype = case("f64.npy", npy(&table(0.), "(510, 1, 256)", "<f8"));
    assert!(dtype.contains("dtype is not little-endian float32"), "{dtype}");
    let truncated = case("cut.npy", npy(&table(0.), "(510, 1, 256)", "<f4")[..5000].to_vec());
    assert!(truncated.contains("cut.npy: voice: data ends early"), "{truncated}");
    let huge = case("huge.bin", vec![0; 2 << 20]);
    assert!(huge.contains("more than the 1048576 a voice file may have"), "{huge}");
    let not_pt = case("x.pt", b"PK not really".to_vec());
    assert!(not_pt.contains("x.pt: not a PyTorch file (zip)"), "{not_pt}");

    let empty = tempfile::tempdir().unwrap();
    assert!(error(empty.path()).contains("no voices found"));
    let not_npz = dir.path().join("voices.bin");
    std::fs::write(&not_npz, b"plain bytes").unwrap();
    assert!(error(&not_npz).contains("neither a voices folder nor a .npz archive"));
    assert!(error(&dir.path().join("absent")).contains("absent: cannot read"));
}

//! Checksums written with the files that are read back, so that bytes damaged after they were
//! written (a node crash on a network file system, a bad disk, a truncated copy) are detected
//! instead of trusted. One definition for the whole project:
//!
//! - a JSON file (a checkpoint's `state.json`, a trial's `status.json`, `final.json`,
//!   `inside.json`) ends with a `"sha256"` member, the SHA-256 of every byte before it
//!   ([`seal_json`], [`open_json`]); the file stays plain JSON (`jq .status status.json` works);
//! - a JSON-lines record (`iterations.jsonl`, `epochs.jsonl`) ends with a `"crc32"` member, the
//!   CRC-32 of the line's bytes before it ([`seal_line`], [`open_line`]);
//! - a binary file (a checkpoint's tensors) is recorded by length and SHA-256 ([`FileRecord`])
//!   in a sealed JSON file written after it.
//!
//! A file or line without its checksum member was written before checksums existed; it is read
//! unchecked (its type's `deny_unknown_fields` still catches a damaged member name). A file that
//! has the member but whose bytes do not match is [`Damage`]: the caller names it in a warning
//! and falls back (docs/reliability.md).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The member that seals a JSON file.
pub const JSON_MEMBER: &str = "sha256";
/// The member that seals a JSON-lines record.
pub const LINE_MEMBER: &str = "crc32";

/// Why bytes read back are not the bytes that were written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The content does not hash to the recorded checksum.
    #[error("checksum mismatch: {what} recorded {recorded}, the content hashes to {found}")]
    Mismatch {
        /// Which checksum (`sha256`, `crc32`).
        what: &'static str,
        /// The recorded value.
        recorded: String,
        /// The value of the bytes read.
        found: String,
    },
    /// Shorter or longer than recorded (a truncated or appended file).
    #[error("{found} bytes, {recorded} were written")]
    Length {
        /// The recorded length.
        recorded: u64,
        /// The length read.
        found: u64,
    },
    /// The checksum member itself is malformed, or the structure around it is broken.
    #[error("{0}")]
    Malformed(&'static str),
}

/// The SHA-256 of `data` as 64 lowercase hex characters.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, the one of zip and PNG) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Length and SHA-256 of a file, recorded when it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256, 64 lowercase hex characters.
    pub sha256: String,
}

impl FileRecord {
    /// The record of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self {
            bytes: data.len() as u64,
            sha256: sha256_hex(data),
        }
    }

    /// Whether `data` is what was recorded.
    pub fn check(&self, data: &[u8]) -> Result<(), Damage> {
        if data.len() as u64 != self.bytes {
            return Err(Damage::Length {
                recorded: self.bytes,
                found: data.len() as u64,
            });
        }
        let found = sha256_hex(data);
        if found != self.sha256 {
            return Err(Damage::Mismatch {
                what: "sha256",
                recorded: self.sha256.clone(),
                found,
            });
        }
        Ok(())
    }
}

/// `"sha256": "` then 64 hex digits, `"`, a newline and the closing brace.
const JSON_TAIL_LEN: usize = 11 + 64 + 3;

/// Seals the pretty-printed JSON object `json` (as `serde_json::to_vec_pretty` writes it): the
/// result ends with a `"sha256"` member holding the SHA-256 of every byte before that member,
/// then a newline.
///
/// # Panics
/// If `json` is not an object (a bug of the caller, never user input).
pub fn seal_json(json: &[u8]) -> Vec<u8> {
    let body = json.trim_ascii_end();
    assert!(
        body.first() == Some(&b'{') && body.last() == Some(&b'}'),
        "seal_json needs a JSON object"
    );
    let inner = body[..body.len() - 1].trim_ascii_end();
    let mut out = Vec::with_capacity(body.len() + JSON_TAIL_LEN + 8);
    out.extend_from_slice(inner);
    out.extend_from_slice(if inner == b"{" { b"\n  " } else { b",\n  " });
    let digest = sha256_hex(&out);
    out.extend_from_slice(format!("\"{JSON_MEMBER}\": \"{digest}\"\n}}\n").as_bytes());
    out
}

/// A JSON file read back: the JSON to parse (the checksum member removed) and whether it was
/// sealed (`false`: written before checksums, read unchecked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The JSON text without the checksum member.
    pub json: Cow<'a, [u8]>,
    /// Whether a checksum was present and matched.
    pub sealed: bool,
}

/// Checks a JSON file written by [`seal_json`] and returns the JSON without its checksum
/// member. A file with no `"sha256"` member at all is returned as is, unsealed.
pub fn open_json(bytes: &[u8]) -> Result<Opened<'_>, Damage> {
    let marker = format!("\"{JSON_MEMBER}\"");
    if !contains(bytes, marker.as_bytes()) {
        return Ok(Opened {
            json: Cow::Borrowed(bytes),
            sealed: false,
        });
    }
    let body = bytes.trim_ascii_end();
    if body.len() < JSON_TAIL_LEN + 2 {
        return Err(Damage::Malformed("the file is too short for its checksum"));
    }
    let (covered, tail) = body.split_at(body.len() - JSON_TAIL_LEN);
    let head = format!("\"{JSON_MEMBER}\": \"");
    let ok_shape = tail.starts_with(head.as_bytes()) && tail.ends_with(b"\"\n}");
    if !ok_shape {
        return Err(Damage::Malformed(
            "the sha256 member is not the file's last member",
        ));
    }
    let recorded = &tail[head.len()..head.len() + 64];
    let found = sha256_hex(covered);
    if recorded != found.as_bytes() {
        return Err(Damage::Mismatch {
            what: "sha256",
            recorded: String::from_utf8_lossy(recorded).into_owned(),
            found,
        });
    }
    // `covered` is the object up to `,\n  ` (or `{\n  ` when it had no other member).
    let inner = covered.trim_ascii_end();
    let inner = inner.strip_suffix(b",").unwrap_or(inner);
    let mut json = Vec::with_capacity(inner.len() + 2);
    json.extend_from_slice(inner);
    json.extend_from_slice(if inner == b"{" { b"}" } else { b"\n}" });
    Ok(Opened {
        json: Cow::Owned(json),
        sealed: true,
    })
}

/// `,"crc32":"` then 8 hex digits, `"` and the closing brace.
const LINE_TAIL_LEN: usize = 10 + 8 + 2;

/// Seals one compact JSON object (one JSON-lines record, without its newline): the result ends
/// with a `"crc32"` member holding the CRC-32 of the bytes before it.
///
/// # Panics
/// If `json` is not an object (a bug of the caller).
pub fn seal_line(json: &[u8]) -> Vec<u8> {
    let body = json.trim_ascii();
    assert!(
        body.first() == Some(&b'{') && body.last() == Some(&b'}'),
        "seal_line needs a JSON object"
    );
    let inner = &body[..body.len() - 1];
    let mut out = Vec::with_capacity(body.len() + LINE_TAIL_LEN);
    out.extend_from_slice(inner);
    if inner != b"{" {
        out.push(b',');
    }
    let crc = crc32(&out);
    out.extend_from_slice(format!("\"{LINE_MEMBER}\":\"{crc:08x}\"}}").as_bytes());
    out
}

/// Checks a record written by [`seal_line`] and returns it without its checksum member. A line
/// with no `"crc32"` member at all is returned as is (written before checksums).
pub fn open_line(line: &str) -> Result<Cow<'_, str>, Damage> {
    let marker = format!("\"{LINE_MEMBER}\"");
    if !line.contains(&marker) {
        return Ok(Cow::Borrowed(line));
    }
    let body = line.trim_ascii();
    let tail_start = body
        .len()
        .checked_sub(LINE_TAIL_LEN - 1)
        .filter(|&i| body.is_char_boundary(i))
        .ok_or(Damage::Malformed("the line is too short for its checksum"))?;
    let (covered, tail) = body.split_at(tail_start);
    let head = format!("\"{LINE_MEMBER}\":\"");
    if !(tail.starts_with(&head) && tail.ends_with("\"}") && tail.len() == head.len() + 10) {
        return Err(Damage::Malformed(
            "the crc32 member is not the line's last member",
        ));
    }
    let recorded = &tail[head.len()..head.len() + 8];
    let found = format!("{:08x}", crc32(covered.as_bytes()));
    if recorded != found {
        return Err(Damage::Mismatch {
            what: "crc32",
            recorded: recorded.to_string(),
            found,
        });
    }
    let inner = covered.strip_suffix(',').unwrap_or(covered);
    Ok(Cow::Owned(format!("{inner}}}")))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sealed_json_is_json_and_opens_to_the_original() {
        for value in [
            serde_json::json!({"status": "completed", "attempts": 2, "x": 0.1}),
            serde_json::json!({}),
            serde_json::json!({"nested": {"a": [1, 2]}, "s": "sha256"}),
        ] {
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            let sealed = seal_json(&pretty);
            let as_json: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
            assert_eq!(as_json[JSON_MEMBER].as_str().unwrap().len(), 64);
            let opened = open_json(&sealed).unwrap();
            assert!(opened.sealed);
            let back: serde_json::Value = serde_json::from_slice(&opened.json).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn every_single_byte_change_of_a_sealed_json_file_is_detected() {
        let value =
            serde_json::json!({"status": "running", "epochs_done": 3, "train_seconds": 1.5});
        let sealed = seal_json(&serde_json::to_vec_pretty(&value).unwrap());
        for i in 0..sealed.len() {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= flip;
                match open_json(&bad) {
                    Err(_) => {}
                    // Read as unsealed (the member's name was hit): the typed reader's
                    // `deny_unknown_fields` refuses the unknown name; or unparsable JSON.
                    Ok(o) => {
                        let back: Result<serde_json::Value, _> = serde_json::from_slice(&o.json);
                        let refused = match &back {
                            Err(_) => true,
                            Ok(v) => v
                                .as_object()
                                .is_some_and(|m| m.keys().any(|k| value.get(k).is_none())),
                        };
                        assert!(
                            refused,
                            "byte {i} ^ {flip:#x} changed the content unnoticed"
                        );
                    }
                }
            }
        }
        // Truncations are detected (or leave unparsable JSON).
        for n in 0..sealed.len() - 1 {
            let cut = &sealed[..n];
            if let Ok(o) = open_json(cut) {
                assert!(serde_json::from_slice::<serde_json::Value>(&o.json).is_err());
            }
        }
    }

    #[test]
    fn unsealed_json_is_read_as_is() {
        let o = open_json(b"{\"status\": \"pending\"}").unwrap();
        assert!(!o.sealed);
        assert_eq!(&*o.json, b"{\"status\": \"pending\"}");
    }

    #[test]
    fn sealed_lines_open_to_the_original_and_detect_damage() {
        let line = br#"{"epoch":1,"step":0,"iteration":0,"loss":2.302585}"#;
        let sealed = String::from_utf8(seal_line(line)).unwrap();
        assert!(sealed.ends_with("\"}"), "{sealed}");
        assert_eq!(
            open_line(&sealed).unwrap(),
            std::str::from_utf8(line).unwrap()
        );
        let v: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        assert_eq!(v[LINE_MEMBER].as_str().unwrap().len(), 8);
        // A digit changed: detected.
        let bad = sealed.replacen("2.302585", "2.302586", 1);
        assert!(matches!(open_line(&bad), Err(Damage::Mismatch { .. })));
        // The checksum's own digits changed: detected.
        let bad = format!("{}0\"}}", &sealed[..sealed.len() - 3]);
        assert!(open_line(&bad).is_err() || bad == sealed);
        // Lines from before checksums are read as is.
        assert_eq!(open_line("{\"epoch\":1}").unwrap(), "{\"epoch\":1}");
        assert_eq!(
            open_line(std::str::from_utf8(&seal_line(b"{}")).unwrap()).unwrap(),
            "{}"
        );
        // Short or cut lines with the marker are damaged, never a panic.
        for s in [
            "\"crc32\"",
            "{\"crc32\":\"é\"}",
            "{\"a\":1,\"crc32\":\"0000000\"}",
        ] {
            assert!(open_line(s).is_err(), "{s}");
        }
    }

    #[test]
    fn file_records_detect_length_and_content_changes() {
        let r = FileRecord::of(b"tensor bytes");
        assert!(r.check(b"tensor bytes").is_ok());
        assert!(matches!(
            r.check(b"tensor byte"),
            Err(Damage::Length { .. })
        ));
        assert!(matches!(
            r.check(b"tensor bytez"),
            Err(Damage::Mismatch { .. })
        ));
    }
}

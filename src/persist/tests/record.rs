//! The codec's boundaries as tables, and its promises under damage as properties:
//! every cut is `Incomplete`, flipped bits never decode to a different record, and no
//! input panics.

use proptest::prelude::*;

use crate::persist::record::*;

/// A record that owns its bytes, for strategies and tables.
#[derive(Clone, Debug)]
pub(super) enum Owned {
    Put(Vec<u8>, Vec<u8>, u64, Option<u64>),
    Remove(Vec<u8>, Cause),
    TxnBegin(u64, u32),
    TxnCommit(u64, u32),
    TxnFloor(u64),
    Synced(u64, u64),
    Ping(u64, u64, u64),
}

impl Owned {
    pub(super) fn record(&self) -> Record<'_> {
        match self {
            Owned::Put(key, value, version, expires_at) => Record::Put {
                key,
                value,
                version: *version,
                expires_at: *expires_at,
            },
            Owned::Remove(key, cause) => Record::Remove { key, cause: *cause },
            Owned::TxnBegin(id, parts) => Record::TxnBegin {
                id: *id,
                parts: *parts,
            },
            Owned::TxnFloor(id) => Record::TxnFloor { id: *id },
            Owned::TxnCommit(id, records) => Record::TxnCommit {
                id: *id,
                records: *records,
            },
            Owned::Synced(position, bytes) => Record::Synced {
                position: *position,
                bytes: *bytes,
            },
            Owned::Ping(position, bytes, wall) => Record::Ping {
                position: *position,
                bytes: *bytes,
                wall: *wall,
            },
        }
    }
}

pub(super) fn owned() -> impl Strategy<Value = Owned> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    let cause = prop_oneof![
        Just(Cause::Deleted),
        Just(Cause::Evicted),
        Just(Cause::Expired)
    ];
    // Some(0) is stored as None (see `Record::Put`), so it cannot round-trip.
    let expires_at = proptest::option::of(1..=u64::MAX);
    prop_oneof![
        (bytes(), bytes(), any::<u64>(), expires_at)
            .prop_map(|(key, value, version, at)| Owned::Put(key, value, version, at)),
        (bytes(), cause).prop_map(|(key, cause)| Owned::Remove(key, cause)),
        (any::<u64>(), any::<u32>()).prop_map(|(id, parts)| Owned::TxnBegin(id, parts)),
        any::<u64>().prop_map(Owned::TxnFloor),
        (any::<u64>(), any::<u32>()).prop_map(|(id, records)| Owned::TxnCommit(id, records)),
        (any::<u64>(), any::<u64>()).prop_map(|(position, bytes)| Owned::Synced(position, bytes)),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(p, b, w)| Owned::Ping(p, b, w)),
    ]
}

pub(super) fn encoded(record: &Record<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(record, &mut out);
    out
}

/// A frame around any kind and body, with a correct checksum.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut checked = vec![kind];
    checked.extend_from_slice(body);
    let mut out = (checked.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(&checked).to_le_bytes());
    out.extend_from_slice(&checked);
    out
}

fn assert_round_trip(record: &Record<'_>) {
    let bytes = encoded(record);
    assert_eq!(bytes.len(), encoded_len(record), "{record:?}");
    assert_eq!(decode(&bytes), Ok((*record, bytes.len())), "{record:?}");
}

#[test]
fn every_kind_round_trips() {
    let big_value = vec![b'x'; 1 << 20];
    let table = [
        Owned::Put(vec![], vec![], 0, None),
        Owned::Put(b"k".to_vec(), b"\"v\"".to_vec(), 1, Some(1)),
        Owned::Put(vec![0xff; 4096], big_value, u64::MAX, Some(u64::MAX)),
        Owned::Remove(vec![], Cause::Deleted),
        Owned::Remove(b"key".to_vec(), Cause::Evicted),
        Owned::Remove(vec![7; 1000], Cause::Expired),
        Owned::TxnBegin(0, 1),
        Owned::TxnBegin(u64::MAX, u32::MAX),
        Owned::TxnFloor(0),
        Owned::TxnFloor(u64::MAX),
        Owned::TxnCommit(0, 0),
        Owned::TxnCommit(u64::MAX, u32::MAX),
    ];
    for owned in &table {
        assert_round_trip(&owned.record());
    }
}

/// Pins the byte layout: a change here breaks every file already written.
#[test]
fn layout_is_pinned() {
    let remove = Record::Remove {
        key: b"k",
        cause: Cause::Evicted,
    };
    let bytes = encoded(&remove);
    assert_eq!(&bytes[..4], &3u32.to_le_bytes());
    assert_eq!(&bytes[8..], &[2, 1, b'k']);
    assert_eq!(&bytes[4..8], &crc32c::crc32c(&[2, 1, b'k']).to_le_bytes());
    let put = Record::Put {
        key: b"ab",
        value: b"1",
        version: 5,
        expires_at: Some(9),
    };
    let mut body = vec![1];
    body.extend_from_slice(&5u64.to_le_bytes());
    body.extend_from_slice(&9u64.to_le_bytes());
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(b"ab1");
    assert_eq!(&encoded(&put)[8..], &body[..]);
    // The standard CRC32C check value: the crate computes Castagnoli, not zlib's CRC32.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn expiry_zero_is_no_expiry() {
    let put = |expires_at| Record::Put {
        key: b"k",
        value: b"v",
        version: 1,
        expires_at,
    };
    let bytes = encoded(&put(Some(0)));
    let (decoded, _) = decode(&bytes).unwrap();
    assert_eq!(decoded, put(None));
}

type Decoded = Result<(Record<'static>, usize), DecodeError>;

#[test]
fn damage_is_classified() {
    let too_long = MAX_RECORD_BYTES + 1;
    let mut bad_crc = encoded(&Record::TxnBegin { id: 1, parts: 1 });
    bad_crc[4] ^= 1;
    let mut put_key_past_end = 2u64.to_le_bytes().repeat(2);
    put_key_past_end.extend_from_slice(&3u32.to_le_bytes());
    put_key_past_end.extend_from_slice(b"ab");
    let malformed = |why| Err(DecodeError::Malformed(why));
    let table: [(&str, Vec<u8>, Decoded); 17] = [
        ("empty", vec![], Err(DecodeError::Incomplete)),
        ("zeros", vec![0; 64], malformed("zero-length frame")),
        (
            "too long",
            too_long.to_le_bytes().repeat(3),
            Err(DecodeError::TooLong(too_long)),
        ),
        ("bad crc", bad_crc, Err(DecodeError::BadChecksum)),
        ("kind 0", frame(0, b""), malformed("unknown record kind")),
        (
            "kind 8",
            frame(8, &[0; 12]),
            malformed("unknown record kind"),
        ),
        (
            "floor 9 bytes",
            frame(7, &[0; 9]),
            malformed("transaction floor is not 8 bytes"),
        ),
        (
            "synced 12 bytes",
            frame(5, &[0; 12]),
            malformed("synced is not 16 bytes"),
        ),
        (
            "ping 16 bytes",
            frame(6, &[0; 16]),
            malformed("ping is not 24 bytes"),
        ),
        (
            "kind 255",
            frame(255, &[1; 30]),
            malformed("unknown record kind"),
        ),
        (
            "short put",
            frame(1, &[0; 19]),
            malformed("put shorter than its fixed fields"),
        ),
        (
            "put key past end",
            frame(1, &put_key_past_end),
            malformed("put key runs past the record"),
        ),
        (
            "remove no cause",
            frame(2, b""),
            malformed("remove without a cause"),
        ),
        (
            "remove cause 3",
            frame(2, &[3, b'k']),
            malformed("unknown removal cause"),
        ),
        (
            "begin 7 bytes",
            frame(3, &[0; 8]),
            malformed("transaction begin is not 12 bytes"),
        ),
        (
            "begin 13 bytes",
            frame(3, &[0; 13]),
            malformed("transaction begin is not 12 bytes"),
        ),
        (
            "commit 11 bytes",
            frame(4, &[0; 11]),
            malformed("transaction commit is not 12 bytes"),
        ),
    ];
    for (name, bytes, expected) in &table {
        assert_eq!(&decode(bytes), expected, "{name}");
    }
}

#[test]
fn decode_takes_one_record_of_a_stream() {
    let first = Record::TxnBegin { id: 7, parts: 1 };
    let mut bytes = encoded(&first);
    let used = bytes.len();
    encode(&Record::TxnCommit { id: 7, records: 0 }, &mut bytes);
    assert_eq!(decode(&bytes), Ok((first, used)));
}

#[test]
fn headers_round_trip() {
    for kind in [FileKind::Log, FileKind::Snapshot] {
        let header = FileHeader {
            kind,
            partition: 3,
            epoch: u64::MAX,
            first_seq: 1 << 40,
        };
        let mut bytes = header.encode().to_vec();
        assert_eq!(FileHeader::decode(&bytes), Ok(header));
        bytes.extend_from_slice(b"records follow");
        assert_eq!(FileHeader::decode(&bytes), Ok(header));
    }
}

#[test]
fn header_damage_is_classified() {
    let good = FileHeader {
        kind: FileKind::Log,
        partition: 1,
        epoch: 2,
        first_seq: 3,
    }
    .encode();
    let edit = |at: usize, bytes: &[u8]| {
        let mut header = good;
        header[at..at + bytes.len()].copy_from_slice(bytes);
        header
    };
    let table = [
        (
            "short",
            good[..HEADER_BYTES - 1].to_vec(),
            HeaderError::TooShort,
        ),
        (
            "magic",
            edit(0, b"RUSTKVX\n").to_vec(),
            HeaderError::BadMagic,
        ),
        (
            "format",
            edit(8, &2u32.to_le_bytes()).to_vec(),
            HeaderError::UnsupportedFormat(2),
        ),
        ("epoch", edit(16, &[9]).to_vec(), HeaderError::BadChecksum),
        ("crc", edit(32, &[0]).to_vec(), HeaderError::BadChecksum),
    ];
    for (name, bytes, expected) in table {
        assert_eq!(FileHeader::decode(&bytes), Err(expected), "{name}");
    }
    assert_eq!(LOG_MAGIC.len() + 28, HEADER_BYTES);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_record_round_trips(owned in owned()) {
        assert_round_trip(&owned.record());
    }

    #[test]
    fn every_cut_is_incomplete(owned in owned()) {
        let bytes = encoded(&owned.record());
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode(&bytes[..cut]), Err(DecodeError::Incomplete));
        }
    }

    #[test]
    fn flipped_bits_never_decode_to_another_record(
        owned in owned(),
        flips in proptest::collection::vec(any::<proptest::sample::Index>(), 1..5),
    ) {
        let record = owned.record();
        let mut bytes = encoded(&record);
        for flip in &flips {
            let bit = flip.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        if let Ok((decoded, _)) = decode(&bytes) {
            prop_assert_eq!(decoded, record);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let _ = FileHeader::decode(&bytes);
    }

    /// Checksummed garbage reaches the body parser: it must refuse or decode it, and
    /// what it decodes must encode back to the same bytes (one encoding per record).
    #[test]
    fn checksummed_garbage_is_parsed_or_refused(
        kind in 0u8..6,
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let bytes = frame(kind, &body);
        match decode(&bytes) {
            Ok((record, used)) => {
                prop_assert_eq!(used, bytes.len());
                prop_assert_eq!(encoded(&record), bytes);
            }
            Err(error) => prop_assert!(matches!(error, DecodeError::Malformed(_)), "{error:?}"),
        }
    }
}

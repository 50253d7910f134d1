//! The record codec: one byte format for the write-ahead log, snapshots and the
//! replication stream, so a record means the same thing wherever it is read.
//!
//! Two kinds exist only in the replication stream, never in a file: `Synced` ends
//! a full copy and `Ping` carries the primary's head between records. A file
//! holding one is damage like any unknown kind would be (recovery skips them).
//!
//! A frame is `[len: u32 LE][crc: u32 LE][kind: u8][body]`, with `len = 1 + body.len()`
//! and `crc = crc32c(kind, body)`. The length comes first so a reader knows how much
//! to read before it can check anything; it is outside the checksum, so a damaged
//! length shows up as a checksum over the wrong bytes, a length past the end of the
//! file, or one above `MAX_RECORD_BYTES`. Integers are little-endian, the byte order
//! of every machine we run on, so encoding is a copy.
//!
//! Each file starts with a `FileHeader` naming what it is (log or snapshot), the format,
//! the partition, the epoch and the sequence number of its first record.
//!
//! Pure: no I/O here. `segment` reads files of these frames, `dir` owns the directory.

/// Length and checksum fields, before the kind byte.
pub(super) const PREFIX_BYTES: usize = 8;
/// What a frame adds to its body: length, checksum and kind.
pub const FRAME_OVERHEAD: usize = PREFIX_BYTES + 1;
/// The largest `len` a frame may declare. The store's key and value limits keep records
/// far below it, so a length above it is damage, and refusing it keeps a flipped high
/// bit from sending a reader off to buffer gigabytes.
pub const MAX_RECORD_BYTES: u32 = 128 * 1024 * 1024;

const KIND_PUT: u8 = 1;
const KIND_REMOVE: u8 = 2;
const KIND_TXN_BEGIN: u8 = 3;
const KIND_TXN_COMMIT: u8 = 4;
const KIND_SYNCED: u8 = 5;
const KIND_PING: u8 = 6;
const KIND_TXN_FLOOR: u8 = 7;

/// Put body before the key: version, expiry, key length.
const PUT_FIXED_BYTES: usize = 8 + 8 + 4;

/// Why a key left the store. Replaying a removal needs no cause, but eviction and
/// expiry are not the client's doing, and a replica's statistics should say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Deleted = 0,
    Evicted = 1,
    Expired = 2,
}

impl Cause {
    fn from_byte(byte: u8) -> Option<Cause> {
        match byte {
            0 => Some(Cause::Deleted),
            1 => Some(Cause::Evicted),
            2 => Some(Cause::Expired),
            _ => None,
        }
    }
}

/// One change to a partition, borrowing its bytes from the caller's (or the read) buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// `key` now holds `value` (the JSON text as stored) at `version`. `expires_at` is
    /// absolute, in Unix-epoch nanoseconds, so a replay after downtime expires the key
    /// at the moment the client asked for. `Some(0)` is stored as `None`: the epoch
    /// itself is no expiry anyone sets.
    Put {
        key: &'a [u8],
        value: &'a [u8],
        version: u64,
        expires_at: Option<u64>,
    },
    /// `key` is gone, and why.
    Remove { key: &'a [u8], cause: Cause },
    /// The records up to the `TxnCommit` with the same `id` are this partition's part
    /// of transaction `id`, which has `parts` such parts (one per partition it wrote):
    /// applied only if every part is complete, or if `id` is below a `TxnFloor`.
    /// In the replication stream a transaction is one run of records (`parts` 1).
    TxnBegin { id: u64, parts: u32 },
    /// Ends this partition's part of transaction `id`; `records` counts the records
    /// between begin and commit, so a reader can tell a complete part from a torn one.
    TxnCommit { id: u64, records: u32 },
    /// Every transaction with an id below `id` had all its parts written when this
    /// record was made: a part whose siblings a later snapshot compacted away is
    /// still known complete. Starts each log a snapshot begins.
    TxnFloor { id: u64 },
    /// Replication stream only: the full copy before this is complete, and the
    /// records after it are the primary's from `position` on (`bytes` is the
    /// stream's byte count at that position).
    Synced { position: u64, bytes: u64 },
    /// Replication stream only: the primary's head (`position`, `bytes`) when it
    /// sent this, and its wall clock then (Unix nanoseconds).
    Ping {
        position: u64,
        bytes: u64,
        wall: u64,
    },
}

/// Why the bytes at the start of a buffer are not a record.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the frame does (or before its 8-byte prefix).
    Incomplete,
    /// The frame declares a length above `MAX_RECORD_BYTES`.
    TooLong(u32),
    /// The checksum does not match the kind and body.
    BadChecksum,
    /// The checksum matches but the body is not a record of this format.
    Malformed(&'static str),
}

/// Appends `record`, framed, to `out`. The caller keeps records within
/// `MAX_RECORD_BYTES` (the store's key and value limits do): a longer one would be
/// written, then read back as damage.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(encoded_len(record));
    // Length and checksum are patched in once the body is written, so the body is
    // written once and checksummed in place.
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    out.push(kind(record));
    encode_body(record, out);
    let len = u32::try_from(out.len() - start - PREFIX_BYTES).expect("record over 4 GiB");
    debug_assert!(len <= MAX_RECORD_BYTES, "record of {len} bytes");
    let crc = crc32c::crc32c(&out[start + PREFIX_BYTES..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The number of bytes `encode` appends for `record`.
pub fn encoded_len(record: &Record<'_>) -> usize {
    FRAME_OVERHEAD + body_len(record)
}

/// Decodes the record at the start of `buf`: the record and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
    let Some(prefix) = buf.get(..PREFIX_BYTES) else {
        return Err(DecodeError::Incomplete);
    };
    let len = u32_at(prefix, 0);
    if len > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLong(len));
    }
    // A zero length has no kind byte. It is also what preallocated, never-written
    // space reads as, and crc32c of nothing is 0: without this check a zero-filled
    // tail would decode as an endless run of empty frames.
    if len == 0 {
        return Err(DecodeError::Malformed("zero-length frame"));
    }
    let total = PREFIX_BYTES + len as usize;
    let Some(checked) = buf.get(PREFIX_BYTES..total) else {
        return Err(DecodeError::Incomplete);
    };
    if crc32c::crc32c(checked) != u32_at(prefix, 4) {
        return Err(DecodeError::BadChecksum);
    }
    let record = decode_body(checked[0], &checked[1..])?;
    Ok((record, total))
}

/// First bytes of a log file.
pub const LOG_MAGIC: [u8; 8] = *b"RUSTKVL\n";
/// First bytes of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RUSTKVS\n";
/// The on-disk format this build writes and reads: bumped on any change to the header,
/// the frame or a record body, so an older build refuses a newer file by name.
pub const FORMAT_VERSION: u32 = 1;
/// Magic, format, partition, epoch, first sequence number, checksum.
pub const HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 8 + 4;
const HEADER_CHECKED_BYTES: usize = HEADER_BYTES - 4;

/// Which of the two file kinds a file is; its magic says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Log,
    Snapshot,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Log => "log",
            FileKind::Snapshot => "snapshot",
        })
    }
}

impl FileKind {
    fn magic(self) -> [u8; 8] {
        match self {
            FileKind::Log => LOG_MAGIC,
            FileKind::Snapshot => SNAPSHOT_MAGIC,
        }
    }
}

/// What a file is, written once at its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub kind: FileKind,
    /// The partition whose records the file holds, so a file cannot be replayed into
    /// another partition by a misnamed path or a changed partition count.
    pub partition: u32,
    /// The run of the server that wrote it (the manifest's epoch at the time).
    pub epoch: u64,
    /// Sequence number of the file's first record; the next ones follow consecutively.
    /// A replication position names a record by this count.
    pub first_seq: u64,
}

/// Why the first `HEADER_BYTES` of a file are not a header we can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("shorter than the {HEADER_BYTES}-byte file header")]
    TooShort,
    #[error("does not start with a RustKV log or snapshot magic number")]
    BadMagic,
    #[error("written in on-disk format {0}, but this build reads format {FORMAT_VERSION}")]
    UnsupportedFormat(u32),
    #[error("file header checksum mismatch (the header is damaged)")]
    BadChecksum,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0; HEADER_BYTES];
        bytes[..8].copy_from_slice(&self.kind.magic());
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.partition.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..HEADER_CHECKED_BYTES]);
        bytes[HEADER_CHECKED_BYTES..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Reads the header at the start of `bytes` (which may go on past it).
    pub fn decode(bytes: &[u8]) -> Result<FileHeader, HeaderError> {
        let bytes = bytes.get(..HEADER_BYTES).ok_or(HeaderError::TooShort)?;
        let kind = match bytes[..8].try_into().expect("8 bytes") {
            LOG_MAGIC => FileKind::Log,
            SNAPSHOT_MAGIC => FileKind::Snapshot,
            _ => return Err(HeaderError::BadMagic),
        };
        // The format is read before the checksum: a later format may lay out (and
        // checksum) the rest differently, and "format 2" tells an operator more than
        // "bad checksum" would.
        let format = u32_at(bytes, 8);
        if format != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedFormat(format));
        }
        if crc32c::crc32c(&bytes[..HEADER_CHECKED_BYTES]) != u32_at(bytes, HEADER_CHECKED_BYTES) {
            return Err(HeaderError::BadChecksum);
        }
        Ok(FileHeader {
            kind,
            partition: u32_at(bytes, 12),
            epoch: u64_at(bytes, 16),
            first_seq: u64_at(bytes, 24),
        })
    }
}

fn kind(record: &Record<'_>) -> u8 {
    match record {
        Record::Put { .. } => KIND_PUT,
        Record::Remove { .. } => KIND_REMOVE,
        Record::TxnBegin { .. } => KIND_TXN_BEGIN,
        Record::TxnCommit { .. } => KIND_TXN_COMMIT,
        Record::TxnFloor { .. } => KIND_TXN_FLOOR,
        Record::Synced { .. } => KIND_SYNCED,
        Record::Ping { .. } => KIND_PING,
    }
}

fn body_len(record: &Record<'_>) -> usize {
    match record {
        Record::Put { key, value, .. } => PUT_FIXED_BYTES + key.len() + value.len(),
        Record::Remove { key, .. } => 1 + key.len(),
        Record::TxnBegin { .. } | Record::TxnCommit { .. } => 8 + 4,
        Record::TxnFloor { .. } => 8,
        Record::Synced { .. } => 8 + 8,
        Record::Ping { .. } => 8 + 8 + 8,
    }
}

fn encode_body(record: &Record<'_>, out: &mut Vec<u8>) {
    match *record {
        Record::Put {
            key,
            value,
            version,
            expires_at,
        } => {
            let key_len = u32::try_from(key.len()).expect("key over 4 GiB");
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&expires_at.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&key_len.to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        Record::Remove { key, cause } => {
            out.push(cause as u8);
            out.extend_from_slice(key);
        }
        Record::TxnBegin { id, parts } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&parts.to_le_bytes());
        }
        Record::TxnFloor { id } => out.extend_from_slice(&id.to_le_bytes()),
        Record::TxnCommit { id, records } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&records.to_le_bytes());
        }
        Record::Synced { position, bytes } => {
            out.extend_from_slice(&position.to_le_bytes());
            out.extend_from_slice(&bytes.to_le_bytes());
        }
        Record::Ping {
            position,
            bytes,
            wall,
        } => {
            out.extend_from_slice(&position.to_le_bytes());
            out.extend_from_slice(&bytes.to_le_bytes());
            out.extend_from_slice(&wall.to_le_bytes());
        }
    }
}

fn decode_body(kind: u8, body: &[u8]) -> Result<Record<'_>, DecodeError> {
    match kind {
        KIND_PUT => decode_put(body),
        KIND_REMOVE => decode_remove(body),
        KIND_TXN_BEGIN => {
            let body = exact::<12>(body, "transaction begin is not 12 bytes")?;
            let (id, parts) = (u64_at(body, 0), u32_at(body, 8));
            Ok(Record::TxnBegin { id, parts })
        }
        KIND_TXN_COMMIT => {
            let body = exact::<12>(body, "transaction commit is not 12 bytes")?;
            let (id, records) = (u64_at(body, 0), u32_at(body, 8));
            Ok(Record::TxnCommit { id, records })
        }
        KIND_TXN_FLOOR => {
            let body = exact::<8>(body, "transaction floor is not 8 bytes")?;
            Ok(Record::TxnFloor {
                id: u64_at(body, 0),
            })
        }
        KIND_SYNCED => {
            let body = exact::<16>(body, "synced is not 16 bytes")?;
            let (position, bytes) = (u64_at(body, 0), u64_at(body, 8));
            Ok(Record::Synced { position, bytes })
        }
        KIND_PING => {
            let body = exact::<24>(body, "ping is not 24 bytes")?;
            Ok(Record::Ping {
                position: u64_at(body, 0),
                bytes: u64_at(body, 8),
                wall: u64_at(body, 16),
            })
        }
        _ => Err(DecodeError::Malformed("unknown record kind")),
    }
}

fn decode_put(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    if body.len() < PUT_FIXED_BYTES {
        return Err(DecodeError::Malformed("put shorter than its fixed fields"));
    }
    let expires_at = u64_at(body, 8);
    let key_len = u32_at(body, 16) as usize;
    let rest = &body[PUT_FIXED_BYTES..];
    if key_len > rest.len() {
        return Err(DecodeError::Malformed("put key runs past the record"));
    }
    let (key, value) = rest.split_at(key_len);
    Ok(Record::Put {
        key,
        value,
        version: u64_at(body, 0),
        expires_at: (expires_at != 0).then_some(expires_at),
    })
}

fn decode_remove(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    let Some((&cause, key)) = body.split_first() else {
        return Err(DecodeError::Malformed("remove without a cause"));
    };
    let cause = Cause::from_byte(cause).ok_or(DecodeError::Malformed("unknown removal cause"))?;
    Ok(Record::Remove { key, cause })
}

fn exact<'a, const N: usize>(
    body: &'a [u8],
    why: &'static str,
) -> Result<&'a [u8; N], DecodeError> {
    body.try_into().map_err(|_| DecodeError::Malformed(why))
}

/// Callers have checked the bounds; a panic here is a bug in this file.
pub(super) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

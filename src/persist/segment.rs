//! Reading a whole log or snapshot file back, and telling a crash from corruption.
//!
//! A crash can only damage the end of a file: the last writes had not reached the disk,
//! so the tail is short, zero-filled (preallocated space) or half-written. That is a
//! *torn tail*; it is cut off and reading goes on. Damage followed by valid records is
//! something else (a bad disk, a stray write, an edited file): dropping it would lose
//! acknowledged writes silently, so it stops the server unless the operator set
//! `persistence.truncate_corrupt`.
//!
//! The file is read in large chunks through one reusable buffer: recovery speed is
//! bounded by the checksum, not by syscalls, and memory by the largest record.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use super::record::{
    self, DecodeError, FileHeader, FileKind, HEADER_BYTES, HeaderError, MAX_RECORD_BYTES,
    PREFIX_BYTES, Record,
};

/// How much is read at a time. Large enough that syscalls cost nothing next to the
/// checksum; the buffer grows past it only for a record larger than this.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Where the valid data of a file ended, and how many bytes after it were cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub dropped: u64,
}

/// What `read` found in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// `None` when the file was shorter than a header (or an all-zero header with
    /// nothing valid after it): a crash while creating it. It is now empty.
    pub header: Option<FileHeader>,
    /// Records delivered to the callback.
    pub records: u64,
    /// Valid bytes, header included: the file's length after any truncation.
    pub bytes: u64,
    /// A torn tail that was cut off (or corruption, with `truncate_corrupt`).
    pub torn: Option<Damage>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a RustKV file: {reason}")]
    Header { path: PathBuf, reason: HeaderError },
    #[error("{path}: expected a {expected} file, found a {found} file")]
    WrongKind {
        path: PathBuf,
        expected: FileKind,
        found: FileKind,
    },
    #[error(
        "{path}: corrupt record at byte {offset} followed by valid records \
         (set persistence.truncate_corrupt = true to drop everything from there)"
    )]
    Corrupt { path: PathBuf, offset: u64 },
}

/// Reads every record of `path` in order, calling `each(seq, record)`, where `seq`
/// counts on from the header's `first_seq`.
///
/// A torn tail is cut off the file on disk (and synced) before this returns, so the
/// next writer appends after valid data. Records are delivered as they are read: on
/// `Corrupt` the callback has already seen the records before the damage. Records of a
/// transaction whose commit was torn off are delivered too; holding them back until
/// the commit is the caller's business.
pub fn read(
    path: &Path,
    expected: FileKind,
    truncate_corrupt: bool,
    each: impl FnMut(u64, Record<'_>),
) -> Result<Summary, SegmentError> {
    read_chunked(path, expected, truncate_corrupt, CHUNK_BYTES, each)
}

/// Reads only the header of `path`: `None` if the file is shorter than one. For a
/// caller that checks the partition or epoch before replaying anything.
pub fn read_header(path: &Path) -> Result<Option<FileHeader>, SegmentError> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES);
    let file = File::open(path).map_err(io_error(path))?;
    file.take(HEADER_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() < HEADER_BYTES {
        return Ok(None);
    }
    FileHeader::decode(&bytes)
        .map(Some)
        .map_err(|reason| header_error(path, reason))
}

/// Creates a new file at `path` holding only `header`, positioned after it. Fails if
/// the file exists: a file is written by one writer, once. Not synced: the caller
/// decides when (and syncs the directory for the new name).
pub fn create(path: &Path, header: &FileHeader) -> io::Result<File> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(&header.encode())?;
    Ok(file)
}

/// `read` with the chunk size as a parameter, so tests can make records span chunks.
pub(super) fn read_chunked(
    path: &Path,
    expected: FileKind,
    truncate_corrupt: bool,
    chunk: usize,
    each: impl FnMut(u64, Record<'_>),
) -> Result<Summary, SegmentError> {
    let file = File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut window = Window::new(file, len, chunk);
    let Some(header) = read_file_header(path, &mut window, expected)? else {
        return torn_creation(path, &mut window, truncate_corrupt);
    };
    let (records, damage) = deliver(path, &mut window, header.first_seq, each)?;
    let offset = window.offset();
    let torn = match damage {
        Some(error) => cut(
            path,
            &mut window,
            offset,
            truncate_corrupt,
            describe(&error),
        )?,
        None => None,
    };
    Ok(Summary {
        header: Some(header),
        records,
        bytes: offset,
        torn,
    })
}

/// Decodes and delivers records from the window until the end of the file or the
/// first that does not decode: how many, and why it stopped early if it did.
fn deliver(
    path: &Path,
    window: &mut Window,
    first_seq: u64,
    mut each: impl FnMut(u64, Record<'_>),
) -> Result<(u64, Option<DecodeError>), SegmentError> {
    let mut records = 0;
    loop {
        let error = match record::decode(window.rest()) {
            Ok((record, used)) => {
                each(first_seq + records, record);
                records += 1;
                window.consume(used);
                continue;
            }
            Err(error) => error,
        };
        if error == DecodeError::Incomplete && window.refill().map_err(io_error(path))? {
            continue;
        }
        // Incomplete with nothing left is the clean end of the file.
        return Ok((records, (!window.rest().is_empty()).then_some(error)));
    }
}

/// A file with no header, or a zeroed one: created, then a crash before its first
/// bytes reached the disk. It holds nothing, so it is emptied for the writer.
fn torn_creation(
    path: &Path,
    window: &mut Window,
    truncate_corrupt: bool,
) -> Result<Summary, SegmentError> {
    let what = match window.len < HEADER_BYTES as u64 {
        true => "file shorter than its header",
        false => "zero-filled file header",
    };
    let torn = cut(path, window, 0, truncate_corrupt, what)?;
    Ok(Summary {
        header: None,
        records: 0,
        bytes: 0,
        torn,
    })
}

/// The header, `None` for a torn creation (short or all-zero), or why the file is
/// refused. Leaves the window after the header.
fn read_file_header(
    path: &Path,
    window: &mut Window,
    expected: FileKind,
) -> Result<Option<FileHeader>, SegmentError> {
    while window.rest().len() < HEADER_BYTES && window.refill().map_err(io_error(path))? {}
    let bytes = window.rest();
    if bytes.len() < HEADER_BYTES || bytes[..HEADER_BYTES].iter().all(|&byte| byte == 0) {
        // An all-zero header is a file created but never written (a crash before the
        // data reached the disk); `cut` still refuses it if valid records follow.
        return Ok(None);
    }
    let header = FileHeader::decode(bytes).map_err(|reason| header_error(path, reason))?;
    if header.kind != expected {
        return Err(SegmentError::WrongKind {
            path: path.to_owned(),
            expected,
            found: header.kind,
        });
    }
    window.consume(HEADER_BYTES);
    Ok(Some(header))
}

/// Damage at `offset`: cuts the file there if nothing valid follows (or the operator
/// said to cut corruption too), else refuses it.
fn cut(
    path: &Path,
    window: &mut Window,
    offset: u64,
    truncate_corrupt: bool,
    what: &str,
) -> Result<Option<Damage>, SegmentError> {
    let dropped = window.len.saturating_sub(offset);
    if dropped == 0 {
        return Ok(None);
    }
    let corrupt = valid_record_after(window).map_err(io_error(path))?;
    if corrupt && !truncate_corrupt {
        return Err(SegmentError::Corrupt {
            path: path.to_owned(),
            offset,
        });
    }
    if corrupt {
        log::warn!(
            "{}: CORRUPTION at byte {offset} ({what}) with valid records after it; \
             persistence.truncate_corrupt is set, so dropping the last {dropped} bytes",
            path.display()
        );
    } else {
        log::warn!(
            "{}: torn tail at byte {offset} ({what}), left by a crash; dropping the last {dropped} bytes",
            path.display()
        );
    }
    truncate(path, offset).map_err(io_error(path))?;
    Ok(Some(Damage { offset, dropped }))
}

/// Whether a valid record starts anywhere after the window's position. Bytewise, as
/// damage is rare; a candidate must fit in the file, match its checksum and decode, so
/// garbage passes only with the odds of a 32-bit checksum collision.
fn valid_record_after(window: &mut Window) -> io::Result<bool> {
    window.consume(1.min(window.rest().len()));
    loop {
        if window.rest().len() < PREFIX_BYTES {
            if window.refill()? {
                continue;
            }
            return Ok(false);
        }
        if fits(window.rest(), window.remaining()) {
            match record::decode(window.rest()) {
                Ok(_) => return Ok(true),
                // `fits` said the file holds the whole frame: read on to it.
                Err(DecodeError::Incomplete) => {
                    if window.refill()? {
                        continue;
                    }
                }
                Err(_) => {}
            }
        }
        window.consume(1);
    }
}

/// Whether the frame at the start of `rest` declares a length that fits in `remaining`
/// bytes of file, so the scan never buffers a frame the file cannot hold.
fn fits(rest: &[u8], remaining: u64) -> bool {
    let len = record::u32_at(rest, 0);
    (1..=MAX_RECORD_BYTES).contains(&len) && PREFIX_BYTES as u64 + u64::from(len) <= remaining
}

fn truncate(path: &Path, offset: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    file.sync_all()
}

fn describe(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Incomplete => "record cut short",
        DecodeError::TooLong(_) => "impossible record length",
        DecodeError::BadChecksum => "checksum mismatch",
        DecodeError::Malformed(why) => why,
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_owned(),
        source,
    }
}

fn header_error(path: &Path, reason: HeaderError) -> SegmentError {
    SegmentError::Header {
        path: path.to_owned(),
        reason,
    }
}

/// A sliding window over a file: `buf[pos..]` is read but not yet consumed.
struct Window {
    file: File,
    /// The file's length when opened.
    len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    pos: usize,
    chunk: usize,
}

impl Window {
    fn new(file: File, len: u64, chunk: usize) -> Self {
        Window {
            file,
            len,
            buf: Vec::with_capacity(chunk),
            base: 0,
            pos: 0,
            chunk,
        }
    }

    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, bytes: usize) {
        debug_assert!(bytes <= self.rest().len());
        self.pos += bytes;
    }

    /// File offset of the first unconsumed byte.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes of the file from the first unconsumed one to the end.
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.offset())
    }

    /// Drops the consumed bytes and appends up to one more chunk; false at end of file.
    fn refill(&mut self) -> io::Result<bool> {
        self.buf.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
        let read = (&self.file)
            .take(self.chunk as u64)
            .read_to_end(&mut self.buf)?;
        Ok(read > 0)
    }
}

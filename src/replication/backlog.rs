//! The replication backlog: the most recent changes, as encoded records, by position.
//!
//! A position counts records since the history began (`records`), and their bytes
//! (`bytes`). The backlog keeps records in chunks of about `CHUNK_BYTES` and drops
//! whole chunks from the front once it holds more than its limit, so its memory is
//! bounded by the limit plus two chunks (one being filled, one dropped and kept to
//! be filled next), whatever the replicas do: a replica whose position has been
//! dropped gets `Gone` and must take a full copy. Pure: no lock, no clock, no I/O
//! (`feed` shares it).
//!
//! Readers carry whole positions (records and bytes), so a read finds its record
//! by the chunk's byte offset instead of walking the chunk's frames; `locate`
//! walks once, when a replica names only a record count.

use std::collections::VecDeque;

/// Bytes per chunk. Large enough that a busy replica reads many records per copy,
/// small enough that dropping one frees memory in small steps.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A place in the history: records and bytes before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub records: u64,
    pub bytes: u64,
}

/// The position asked for is not held (dropped, or not reached yet).
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

#[derive(Debug)]
struct Chunk {
    /// The position before its first record.
    start: Position,
    records: u64,
    data: Vec<u8>,
}

#[derive(Debug)]
pub struct Backlog {
    chunks: VecDeque<Chunk>,
    /// The position after the last record.
    head: Position,
    /// Bytes held in all chunks.
    held: usize,
    limit: usize,
    /// The buffer of the last chunk dropped, emptied, for the next chunk: once the
    /// backlog is full it cycles through memory already paged in, instead of
    /// freeing 64 KiB and faulting in (and zeroing) 64 KiB anew every few
    /// hundred writes.
    spare: Option<Vec<u8>>,
}

impl Backlog {
    pub fn new(limit: usize, head: Position) -> Self {
        Self {
            chunks: VecDeque::new(),
            head,
            held: 0,
            limit,
            spare: None,
        }
    }

    pub fn head(&self) -> Position {
        self.head
    }

    /// The oldest position a reader may start from.
    pub fn tail(&self) -> Position {
        self.chunks.front().map_or(self.head, |chunk| chunk.start)
    }

    /// Bytes of records held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Forgets everything; the history goes on from `head` (a full copy ended there).
    pub fn reset(&mut self, head: Position) {
        self.chunks.clear();
        self.held = 0;
        self.head = head;
    }

    /// Appends `records` encoded records (whole frames), then drops old chunks past
    /// the limit.
    pub fn append(&mut self, frames: &[u8], records: u64) {
        self.append_with(records, |data| data.extend_from_slice(frames));
    }

    /// Appends `records` records that `encode` writes at the end of a buffer.
    pub fn append_with(&mut self, records: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        let head = self.head;
        let full = self
            .chunks
            .back()
            .is_none_or(|chunk| chunk.data.len() >= CHUNK_BYTES);
        if full {
            let data = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES + 1024));
            self.chunks.push_back(Chunk {
                start: head,
                records: 0,
                data,
            });
        }
        let chunk = self.chunks.back_mut().expect("just ensured");
        let before = chunk.data.len();
        encode(&mut chunk.data);
        let added = chunk.data.len() - before;
        chunk.records += records;
        self.held += added;
        self.head = Position {
            records: head.records + records,
            bytes: head.bytes + added as u64,
        };
        while self.held > self.limit && self.chunks.len() > 1 {
            let mut dropped = self.chunks.pop_front().expect("more than one");
            self.held -= dropped.data.len();
            dropped.data.clear();
            self.spare = Some(dropped.data);
        }
    }

    /// Where `records` is, in bytes too, if it is held (or is the head).
    pub fn locate(&self, records: u64) -> Result<Position, Gone> {
        let (chunk, offset) = self.find(records)?;
        Ok(match chunk {
            Some(chunk) => Position {
                records,
                bytes: chunk.start.bytes + offset as u64,
            },
            None => self.head,
        })
    }

    /// Appends to `out` the records after position `from` (at most the rest of
    /// one chunk), and answers the position after them: `from` itself when there
    /// is nothing new. `from` must be a position this history gave out (`locate`,
    /// `head`, or an earlier `read`): its bytes say where in the chunk to start.
    pub fn read(&self, from: Position, out: &mut Vec<u8>) -> Result<Position, Gone> {
        let Some(chunk) = self.chunk_of(from.records)? else {
            return Ok(self.head);
        };
        // A position from before a `reset` may not fall inside this chunk.
        let offset = from
            .bytes
            .checked_sub(chunk.start.bytes)
            .and_then(|offset| usize::try_from(offset).ok())
            .filter(|offset| *offset < chunk.data.len())
            .ok_or(Gone)?;
        out.extend_from_slice(&chunk.data[offset..]);
        Ok(Position {
            records: chunk.start.records + chunk.records,
            bytes: chunk.start.bytes + chunk.data.len() as u64,
        })
    }

    /// The chunk holding the record after position `records`, and the offset of
    /// that record in it; `None` for the head.
    fn find(&self, records: u64) -> Result<(Option<&Chunk>, usize), Gone> {
        let Some(chunk) = self.chunk_of(records)? else {
            return Ok((None, 0));
        };
        let skip = records - chunk.start.records;
        let mut offset = 0;
        for _ in 0..skip {
            offset += frame_len(&chunk.data[offset..]);
        }
        Ok((Some(chunk), offset))
    }

    /// The chunk holding the record after position `records`; `None` for the head.
    fn chunk_of(&self, records: u64) -> Result<Option<&Chunk>, Gone> {
        if records == self.head.records {
            return Ok(None);
        }
        if records < self.tail().records || records > self.head.records {
            return Err(Gone);
        }
        let index = self
            .chunks
            .partition_point(|chunk| chunk.start.records + chunk.records <= records);
        Ok(Some(&self.chunks[index]))
    }
}

/// The length of the frame at the start of `data` (which holds whole frames).
fn frame_len(data: &[u8]) -> usize {
    let len = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
    crate::persist::record::FRAME_OVERHEAD - 1 + len as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::{Record, decode, encode};

    fn put(backlog: &mut Backlog, n: u64) {
        let key = format!("key{n}");
        backlog.append_with(1, |out| {
            encode(
                &Record::Put {
                    key: key.as_bytes(),
                    value: b"1",
                    version: n,
                    expires_at: None,
                },
                out,
            )
        });
    }

    /// The versions of the records in `bytes`.
    fn versions(mut bytes: &[u8]) -> Vec<u64> {
        let mut seen = Vec::new();
        while !bytes.is_empty() {
            let (record, used) = decode(bytes).expect("whole frames");
            if let Record::Put { version, .. } = record {
                seen.push(version);
            }
            bytes = &bytes[used..];
        }
        seen
    }

    /// Reads everything after `from` as a replica would, chunk by chunk.
    fn read_all(backlog: &Backlog, from: u64) -> Result<Vec<u64>, Gone> {
        let mut out = Vec::new();
        let mut from = backlog.locate(from)?;
        loop {
            let next = backlog.read(from, &mut out)?;
            if next == from {
                return Ok(versions(&out));
            }
            from = next;
        }
    }

    /// A position by its record count alone: enough where it is not held.
    fn at(records: u64) -> Position {
        Position { records, bytes: 0 }
    }

    #[test]
    fn reads_from_any_held_position_in_order() {
        let mut backlog = Backlog::new(1 << 30, Position::default());
        for n in 1..=5000 {
            put(&mut backlog, n);
        }
        assert!(backlog.chunks.len() > 1, "spans several chunks");
        for from in [0, 1, 999, 2500, 4999, 5000] {
            let expected: Vec<u64> = (from + 1..=5000).collect();
            assert_eq!(read_all(&backlog, from), Ok(expected), "from {from}");
        }
        assert_eq!(backlog.read(at(5001), &mut Vec::new()), Err(Gone));
    }

    #[test]
    fn memory_is_bounded_and_a_dropped_position_is_gone() {
        let limit = 3 * CHUNK_BYTES;
        let mut backlog = Backlog::new(limit, Position::default());
        for n in 1..=100_000 {
            put(&mut backlog, n);
            assert!(
                backlog.held() <= limit + CHUNK_BYTES + 64,
                "held {}",
                backlog.held()
            );
        }
        let tail = backlog.tail().records;
        assert!(tail > 0);
        assert_eq!(backlog.read(at(tail - 1), &mut Vec::new()), Err(Gone));
        assert_eq!(
            read_all(&backlog, tail).unwrap().len() as u64,
            100_000 - tail
        );
    }

    #[test]
    fn locate_counts_bytes_and_reset_starts_a_new_history() {
        let mut backlog = Backlog::new(
            1 << 20,
            Position {
                records: 10,
                bytes: 100,
            },
        );
        put(&mut backlog, 11);
        let one = backlog.head().bytes - 100;
        put(&mut backlog, 12);
        assert_eq!(
            backlog.locate(11),
            Ok(Position {
                records: 11,
                bytes: 100 + one
            })
        );
        assert_eq!(backlog.locate(9), Err(Gone));
        backlog.reset(Position {
            records: 50,
            bytes: 7,
        });
        assert_eq!(backlog.tail(), backlog.head());
        assert_eq!(backlog.locate(12), Err(Gone));
        assert_eq!(read_all(&backlog, 50), Ok(vec![]));
    }
}

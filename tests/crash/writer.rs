//! One writer thread: random PUTs and DELETEs until the kill, every answer checked
//! against what the writer knows of its keys.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    OWNED_KEYS, SHARED_KEYS,
    http::{Reply, agent, call},
    model::{Owned, Sent, SharedEvent, Stamp},
};

/// What one writer saw during one cycle.
#[derive(Default)]
pub struct Report {
    pub acked: usize,
    pub max_version: u64,
    pub shared: Vec<SharedEvent>,
    pub failures: Vec<String>,
}

/// One writer's state for one cycle, moved into its thread and back.
pub struct WriterRun {
    pub writer: usize,
    pub owned: Vec<Owned>,
    pub next_n: u64,
    /// Every version acknowledged in this cycle must be larger (the epoch check).
    pub floor: u64,
    pub report: Report,
}

impl WriterRun {
    /// Writes until the kill: 80% on owned keys, 15% deletes.
    pub fn run(&mut self, base: &str, killed: &AtomicBool, seed: u64) {
        let agent = agent();
        let mut rng = StdRng::seed_from_u64(seed);
        while !killed.load(SeqCst) {
            let sent = if rng.gen_bool(0.15) {
                Sent::Delete
            } else {
                self.next_n += 1;
                Sent::Put(Stamp {
                    writer: self.writer,
                    n: self.next_n,
                })
            };
            let owned = rng.gen_bool(0.8);
            let (key, index) = if owned {
                let i = rng.gen_range(0..OWNED_KEYS);
                (format!("w{}-{i}", self.writer), i)
            } else {
                let i = rng.gen_range(0..SHARED_KEYS);
                (format!("s{i}"), i)
            };
            let url = format!("{base}/v1/kv/{key}");
            let reply = match sent {
                Sent::Put(stamp) => call(&agent, "PUT", &url, Some(&stamp.body())),
                Sent::Delete => call(&agent, "DELETE", &url, None),
            };
            let outcome = match (owned, reply) {
                (true, Ok(reply)) => self.owned_answer(index, sent, &reply),
                (false, Ok(reply)) => self.shared_answer(index, sent, &reply),
                (true, Err(error)) => {
                    self.owned[index].in_flight = Some(sent);
                    Err(error)
                }
                (false, Err(error)) => {
                    self.report.shared.push(SharedEvent::Sent(index, sent));
                    Err(error)
                }
            };
            if let Err(failure) = outcome {
                if !killed.load(SeqCst) {
                    self.report.failures.push(format!("{key}: {failure}"));
                }
                return;
            }
            self.report.acked += 1;
        }
    }

    /// Checks an owned key's answer against the model (this writer alone changes
    /// the key, so created/replaced and deleted/absent are known) and applies it.
    fn owned_answer(&mut self, index: usize, sent: Sent, reply: &Reply) -> Result<(), String> {
        let acked = self.owned[index].acked;
        match sent {
            Sent::Put(stamp) => {
                let expected = if acked.is_some() { 200 } else { 201 };
                if reply.status != expected {
                    return Err(format!("PUT answered {reply:?}, expected {expected}"));
                }
                let version = self.written_version(reply)?;
                if let Some((_, before)) = acked
                    && version <= before
                {
                    return Err(format!("PUT answered version {version} after {before}"));
                }
                self.owned[index].acked = Some((stamp, version));
            }
            Sent::Delete => {
                let expected = if acked.is_some() { 204 } else { 404 };
                if reply.status != expected {
                    return Err(format!("DELETE answered {reply:?}, expected {expected}"));
                }
                self.owned[index].acked = None;
            }
        }
        Ok(())
    }

    fn shared_answer(&mut self, index: usize, sent: Sent, reply: &Reply) -> Result<(), String> {
        self.report.shared.push(SharedEvent::Sent(index, sent));
        match (sent, reply.status) {
            (Sent::Put(stamp), 200 | 201) => {
                let version = self.written_version(reply)?;
                let event = SharedEvent::Acked(index, stamp, version);
                self.report.shared.push(event);
                Ok(())
            }
            (Sent::Delete, 204 | 404) => Ok(()),
            _ => Err(format!("{sent:?} answered {reply:?}")),
        }
    }

    /// The version a successful PUT answered: in its body and its ETag, and newer
    /// than any version seen before this start.
    fn written_version(&mut self, reply: &Reply) -> Result<u64, String> {
        let body: serde_json::Value =
            serde_json::from_str(&reply.body).map_err(|error| format!("{error}: {reply:?}"))?;
        let version = body["version"]
            .as_u64()
            .ok_or_else(|| format!("no version in {reply:?}"))?;
        if reply.etag.as_deref() != Some(&format!("\"{version}\"")) {
            return Err(format!("ETag does not match version {version}: {reply:?}"));
        }
        if version <= self.floor {
            return Err(format!(
                "version {version} is not above {}, seen before this start",
                self.floor
            ));
        }
        self.report.max_version = self.report.max_version.max(version);
        Ok(version)
    }
}

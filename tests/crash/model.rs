//! What the clients know of each key after each cycle, and the checks a restarted
//! server's keys must pass.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    thread,
    time::Duration,
};

use super::{
    OWNED_KEYS, SHARED_KEYS, WRITERS,
    common::process::Server,
    http::{agent, read},
    writer::{Report, WriterRun},
};

/// A value's identity: the writer that sent it and its number among that writer's
/// writes. Unique over a whole test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub writer: usize,
    pub n: u64,
}

impl Stamp {
    /// The value sent for this stamp. Its length varies (up to ~450 bytes) so logs
    /// outgrow `rewrite_min_size` and snapshots run under load.
    pub fn body(self) -> String {
        let pad = "x".repeat((self.n as usize * 37 + self.writer * 11) % 400);
        format!(
            r#"{{"writer":{},"n":{},"pad":"{pad}"}}"#,
            self.writer, self.n
        )
    }

    /// The stamp of a stored value, if it is exactly a value some writer sent.
    pub fn of(body: &str) -> Option<Stamp> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        let stamp = Stamp {
            writer: usize::try_from(value["writer"].as_u64()?).ok()?,
            n: value["n"].as_u64()?,
        };
        (stamp.body() == body).then_some(stamp)
    }
}

/// What a key holds: a value and its version, or nothing.
pub type Held = Option<(Stamp, u64)>;

#[derive(Clone, Copy, Debug)]
pub enum Sent {
    Put(Stamp),
    Delete,
}

/// An owned key, known exactly.
#[derive(Clone, Debug, Default)]
pub struct Owned {
    /// What the last acknowledged operation left (or the last restart showed).
    pub acked: Held,
    /// The request whose answer never came (the kill's), if any.
    pub in_flight: Option<Sent>,
}

/// A shared key: everything sent to it and what acknowledgements said.
#[derive(Debug, Default)]
struct Shared {
    sent: HashSet<Stamp>,
    delete_sent: bool,
    put_acked: bool,
    /// The version of each value acknowledged (or read back after a restart).
    versions: HashMap<Stamp, u64>,
    /// The newest of those: whatever the key holds later is at least as new.
    floor: u64,
}

/// What happened to a shared key, as a writer saw it.
pub enum SharedEvent {
    Sent(usize, Sent),
    Acked(usize, Stamp, u64),
}

pub struct Model {
    /// `owned[writer][i]` is key `w{writer}-{i}`.
    owned: Vec<Vec<Owned>>,
    shared: Vec<Shared>,
    /// Each writer's next value number.
    next_n: Vec<u64>,
    /// The largest version seen so far: every later start must hand out larger.
    max_version: u64,
}

impl Model {
    pub fn new() -> Model {
        Model {
            owned: vec![vec![Owned::default(); OWNED_KEYS]; WRITERS],
            shared: (0..SHARED_KEYS).map(|_| Shared::default()).collect(),
            next_n: vec![0; WRITERS],
            max_version: 0,
        }
    }

    /// Reads every key from a restarted server and checks it against the model,
    /// then makes what it read the model's state. Answers the failures.
    pub fn verify(&mut self, base: &str) -> Vec<String> {
        let agent = agent();
        let mut failures = Vec::new();
        for (writer, keys) in self.owned.iter_mut().enumerate() {
            for (i, owned) in keys.iter_mut().enumerate() {
                let key = format!("w{writer}-{i}");
                match read(&agent, base, &key) {
                    Ok(held) => {
                        if let Err(failure) = check_owned(owned, held) {
                            failures.push(format!("{key}: {failure}"));
                        }
                        self.max_version = self.max_version.max(held.map_or(0, |h| h.1));
                        *owned = Owned {
                            acked: held,
                            in_flight: None,
                        };
                    }
                    Err(failure) => failures.push(format!("{key}: {failure}")),
                }
            }
        }
        for (i, shared) in self.shared.iter_mut().enumerate() {
            let key = format!("s{i}");
            match read(&agent, base, &key) {
                Ok(held) => {
                    if let Err(failure) = check_shared(shared, held) {
                        failures.push(format!("{key}: {failure}"));
                    }
                    if let Some((stamp, version)) = held {
                        shared.versions.insert(stamp, version);
                        shared.floor = shared.floor.max(version);
                        self.max_version = self.max_version.max(version);
                    }
                }
                Err(failure) => failures.push(format!("{key}: {failure}")),
            }
        }
        failures
    }

    /// Runs the writers against `server`, kills it after `kill_after`, and folds
    /// what the writers saw into the model. Panics on a wrong answer.
    pub fn load_then_kill(
        &mut self,
        server: &mut Server,
        kill_after: Duration,
        seed: u64,
    ) -> String {
        let killed = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let mut run = WriterRun {
                    writer,
                    owned: std::mem::take(&mut self.owned[writer]),
                    next_n: self.next_n[writer],
                    floor: self.max_version,
                    report: Report::default(),
                };
                let base = server.base.clone();
                let killed = Arc::clone(&killed);
                let seed = seed.wrapping_mul(31).wrapping_add(writer as u64);
                thread::spawn(move || {
                    run.run(&base, &killed, seed);
                    run
                })
            })
            .collect();
        thread::sleep(kill_after);
        killed.store(true, SeqCst);
        server.kill();
        let (mut acked, mut in_flight, mut failures) = (0, 0, Vec::new());
        for handle in writers {
            let run = handle.join().expect("writer thread");
            acked += run.report.acked;
            in_flight += run.owned.iter().filter(|o| o.in_flight.is_some()).count();
            failures.extend(run.report.failures);
            self.max_version = self.max_version.max(run.report.max_version);
            self.next_n[run.writer] = run.next_n;
            self.owned[run.writer] = run.owned;
            for event in run.report.shared {
                self.record_shared(event);
            }
        }
        assert!(
            failures.is_empty(),
            "wrong answers before the kill:\n{}\nserver log:\n{}",
            failures.join("\n"),
            server.log_tail()
        );
        assert!(acked > 0, "no write was acknowledged before the kill");
        format!("{acked} operations acknowledged, {in_flight} on owned keys in flight")
    }

    fn record_shared(&mut self, event: SharedEvent) {
        match event {
            SharedEvent::Sent(i, Sent::Put(stamp)) => {
                self.shared[i].sent.insert(stamp);
            }
            SharedEvent::Sent(i, Sent::Delete) => self.shared[i].delete_sent = true,
            SharedEvent::Acked(i, stamp, version) => {
                let shared = &mut self.shared[i];
                shared.put_acked = true;
                shared.versions.insert(stamp, version);
                shared.floor = shared.floor.max(version);
            }
        }
    }
}

/// The strict check: the acknowledged state exactly (version included), or what
/// the request in flight at the kill would have made.
fn check_owned(owned: &Owned, held: Held) -> Result<(), String> {
    match (held, owned.in_flight) {
        _ if held == owned.acked => Ok(()),
        (Some((stamp, _)), Some(Sent::Put(sent))) if stamp == sent => Ok(()),
        (None, Some(Sent::Delete)) => Ok(()),
        _ => Err(format!(
            "holds {held:?}; acknowledged state {:?}, in flight at the kill {:?}",
            owned.acked, owned.in_flight
        )),
    }
}

/// The weak check for keys several writers race on.
fn check_shared(shared: &Shared, held: Held) -> Result<(), String> {
    let Some((stamp, version)) = held else {
        return if shared.delete_sent || !shared.put_acked {
            Ok(())
        } else {
            Err("absent, but a PUT was acknowledged and no DELETE was ever sent".into())
        };
    };
    if !shared.sent.contains(&stamp) {
        return Err(format!("holds {stamp:?}, never sent to this key"));
    }
    if let Some(&known) = shared.versions.get(&stamp)
        && known != version
    {
        return Err(format!(
            "holds {stamp:?} as version {version}, answered {known}"
        ));
    }
    if version < shared.floor {
        return Err(format!(
            "holds {stamp:?} version {version}, older than the newest acknowledged {}",
            shared.floor
        ));
    }
    Ok(())
}

//! The run's configuration (`/stress.conf`, put on the WFS image by the host) and the figures line
//! each client prints at the end, which the host sums for the soak.
//!
//! Design: both are lines of `key=value` words, so they are read the same way on either side and a
//! missing or malformed word is a clear error rather than a silent default.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};

/// Where the host puts the configuration on the WFS image.
pub const PATH: &str = "/stress.conf";

/// What the host chose for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Seed of the kill schedule, printed by both sides so a run can be repeated.
    pub seed: u64,
    /// Seconds of random kills after the fixed ones: a few for the test, minutes for the soak.
    pub kill_s: u64,
}

fn words(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_whitespace().filter_map(|w| w.split_once('='))
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

impl Config {
    pub fn render(&self) -> String {
        format!("seed={:#x} kill_s={}\n", self.seed, self.kill_s)
    }

    pub fn parse(text: &str) -> Result<Config, &'static str> {
        let get = |key: &str| words(text).find(|&(k, _)| k == key).map(|(_, v)| v);
        let seed = number(get("seed").ok_or("no seed")?).ok_or("bad seed")?;
        let kill_s = number(get("kill_s").ok_or("no kill_s")?).ok_or("bad kill_s")?;
        Ok(Config { seed, kill_s })
    }
}

/// What one client did, as its figures line reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub client: String,
    pub kind: String,
    /// Operations that succeeded (each kind counts its own unit: a rewrite, a read, a rename...).
    pub ops: u64,
    /// Bytes compared against what they had to be.
    pub bytes: u64,
    /// Failed operations by error kind (each a clear error the client expected while servers die).
    pub errors: BTreeMap<String, u64>,
}

/// The prefix of a figures line.
pub const FIGURES: &str = "stress-figures:";

impl Figures {
    pub fn render(&self) -> String {
        let errors: String = if self.errors.is_empty() {
            "-".to_string()
        } else {
            self.errors.iter().map(|(k, n)| format!("{k}:{n}")).collect::<alloc::vec::Vec<_>>().join(",")
        };
        format!(
            "{FIGURES} client={} kind={} ops={} bytes={} errors={errors}",
            self.client, self.kind, self.ops, self.bytes
        )
    }

    /// A figures line anywhere in `line` (after a console prefix, say).
    pub fn parse(line: &str) -> Option<Figures> {
        let rest = &line[line.find(FIGURES)? + FIGURES.len()..];
        let get = |key: &str| words(rest).find(|&(k, _)| k == key).map(|(_, v)| v);
        let mut errors = BTreeMap::new();
        let list = get("errors")?;
        if list != "-" {
            for pair in list.split(',') {
                let (k, n) = pair.split_once(':')?;
                errors.insert(k.to_string(), number(n)?);
            }
        }
        Some(Figures {
            client: get("client")?.to_string(),
            kind: get("kind")?.to_string(),
            ops: number(get("ops")?)?,
            bytes: number(get("bytes")?)?,
            errors,
        })
    }

    /// All failures, of every kind.
    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_refuses_what_is_missing() {
        let c = Config { seed: 0xdead_beef, kill_s: 180 };
        assert_eq!(Config::parse(&c.render()), Ok(c));
        assert_eq!(Config::parse("seed=12 kill_s=3"), Ok(Config { seed: 12, kill_s: 3 }));
        assert_eq!(Config::parse("kill_s=3"), Err("no seed"));
        assert_eq!(Config::parse("seed=0xzz kill_s=3"), Err("bad seed"));
        assert_eq!(Config::parse("seed=1"), Err("no kill_s"));
    }

    #[test]
    fn figures_round_trip_through_a_console_line() {
        let mut f = Figures {
            client: "stress-reader".into(),
            kind: "reader".into(),
            ops: 12,
            bytes: 3072,
            ..Default::default()
        };
        assert_eq!(Figures::parse(&f.render()), Some(f.clone()));
        f.errors.insert("ServerDead".into(), 2);
        f.errors.insert("NotFound".into(), 1);
        let line = format!("stress-reader: {}", f.render());
        assert_eq!(Figures::parse(&line), Some(f.clone()));
        assert_eq!(f.failures(), 3);
        assert_eq!(Figures::parse("stress-figures: client=a kind=b ops=1 bytes=x errors=-"), None);
        assert_eq!(Figures::parse("stress-figures: client=a kind=b ops=1 bytes=2 errors=Busy"), None);
        assert_eq!(Figures::parse("no figures here"), None);
    }
}

/// The prefix of a final-contents line.
pub const FINAL: &str = "stress-final:";

/// A file whose final contents a client knows (fsynced or committed, nothing written after): the
/// host reads it back from the image and compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub path: String,
    pub len: u64,
    pub fnv: u64,
}

/// FNV-1a (64 bits), to name contents compactly in a console line.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

impl Final {
    pub fn of(path: &str, data: &[u8]) -> Final {
        Final { path: path.to_string(), len: data.len() as u64, fnv: fnv(data) }
    }

    pub fn render(&self) -> String {
        format!("{FINAL} path={} len={} fnv={:#x}", self.path, self.len, self.fnv)
    }

    pub fn parse(line: &str) -> Option<Final> {
        let rest = &line[line.find(FINAL)? + FINAL.len()..];
        let get = |key: &str| words(rest).find(|&(k, _)| k == key).map(|(_, v)| v);
        Some(Final { path: get("path")?.to_string(), len: number(get("len")?)?, fnv: number(get("fnv")?)? })
    }

    /// Whether `data` (read from an image) is exactly these contents.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() as u64 == self.len && fnv(data) == self.fnv
    }
}

#[cfg(test)]
mod final_tests {
    use super::*;

    #[test]
    fn final_lines_round_trip_and_judge_contents() {
        let f = Final::of("/fat/stress-log.bin", b"abc");
        assert_eq!(Final::parse(&format!("stress-fsync: {}", f.render())), Some(f.clone()));
        assert!(f.matches(b"abc"));
        assert!(!f.matches(b"abd") && !f.matches(b"ab") && !f.matches(b""));
        assert_eq!(Final::parse("stress-final: path=/a len=3"), None);
    }
}

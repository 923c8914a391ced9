//! A seeded generator of synthetic source records, for the newcomer's sample
//! (`cargo xtask sample`) and the benchmarks. The same seed gives the same records.
//!
//! Out of every 10 real people, about 3 are known to a second source system as well
//! (cross-system duplicates). The mix also holds 15-digit resident IDs for people
//! another system knows by the 18-digit form, name conflicts (same ID, another name),
//! ID type "other", and invalid rows (a broken check character).
//!
//! Records are made as the domain's source records and sent out in their wire form
//! (the conversion in `crate::convert`).

use crm_proto::crm::customer::v1 as pb;

use crate::domain::id::{resident_id_15_to_18, resident_id_check_char};
use crate::domain::{Date, Gender, IdType, PartyKind, SourceRecord};

/// Source systems the generator spreads records over.
pub const SOURCES: [&str; 3] = ["CORE", "CARDS", "LOANS"];

const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙"];
const GIVEN: [&str; 16] =
    ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明"];
const AREAS: [&str; 6] = ["110105", "310104", "440305", "510107", "330106", "320102"];

/// splitmix64: small, fast and good enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One synthetic person's identity.
#[derive(Debug, Clone)]
struct Person {
    id18: String,
    name: String,
    birth: Date,
    male: bool,
    phone: String,
}

fn person(rng: &mut Rng, n: u64) -> Person {
    let year = 1950 + rng.below(50) as i32;
    let month = 1 + rng.below(12) as i32;
    let day = 1 + rng.below(28) as i32;
    let seq = (n % 999) + 1;
    let area = AREAS[rng.below(AREAS.len() as u64) as usize];
    let first17 = format!("{area}{year:04}{month:02}{day:02}{seq:03}");
    let check = resident_id_check_char(&first17).unwrap_or('0');
    let name =
        format!("{}{}{}", SURNAMES[rng.below(12) as usize], GIVEN[rng.below(16) as usize], GIVEN[(n % 16) as usize]);
    Person {
        id18: format!("{first17}{check}"),
        name,
        birth: Date { year, month: month as u8, day: day as u8 },
        male: seq % 2 == 1,
        phone: format!("13{}{:08}", 5 + rng.below(5), rng.below(100_000_000)),
    }
}

fn to_15(id18: &str) -> Option<String> {
    // area(6) + YYMMDD(6) + seq(3): only for 19xx births, the only ones 15-digit IDs had.
    if &id18[6..8] != "19" {
        return None;
    }
    let id15 = format!("{}{}{}", &id18[0..6], &id18[8..14], &id18[14..17]);
    (resident_id_15_to_18(&id15).as_deref() == Some(id18)).then_some(id15)
}

fn record(source: &str, id: String, p: &Person, id_type: IdType, id_number: String, name: String) -> SourceRecord {
    SourceRecord {
        source_system: source.into(),
        source_customer_id: id,
        source_version: 1,
        party_kind: PartyKind::Personal,
        id_type,
        id_number,
        name,
        gender: Some(if p.male { Gender::Male } else { Gender::Female }),
        birth_date: Some(p.birth),
        nationality: Some("CHN".into()),
        mobile_phone: Some(p.phone.clone()),
        email: None,
        address: None,
        occupation: None,
    }
}

/// `n` source records (roughly; the last person may add one more) from `seed`.
pub fn generate(seed: u64, n: usize) -> Vec<pb::SourceRecord> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 1);
    let mut i: u64 = 0;
    while out.len() < n {
        i += 1;
        let p = person(&mut rng, i);
        let home = SOURCES[(i % 3) as usize];
        let roll = rng.below(100);
        let mut main = record(home, format!("{home}-{i:09}"), &p, IdType::ResidentId, p.id18.clone(), p.name.clone());
        if roll < 2 {
            // Invalid row: a broken check character.
            let mut broken = p.id18.clone();
            let last = if broken.ends_with('0') { '1' } else { '0' };
            broken.pop();
            broken.push(last);
            main.id_number = broken;
        } else if roll < 5 {
            main.id_type = IdType::Other;
            main.id_number = format!("X{:010}", rng.below(10_000_000_000));
        }
        out.push(main.into());
        if (5..35).contains(&roll) {
            // Known to another system too: same person, maybe in the old 15-digit form,
            // maybe under another name (a name conflict).
            let other = SOURCES[((i + 1) % 3) as usize];
            let id_number = if roll < 15 { to_15(&p.id18).unwrap_or_else(|| p.id18.clone()) } else { p.id18.clone() };
            let name = if roll < 8 { format!("{}{}", p.name, GIVEN[(i % 7) as usize]) } else { p.name.clone() };
            out.push(record(other, format!("{other}-{i:09}"), &p, IdType::ResidentId, id_number, name).into());
        }
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_records() {
        assert_eq!(generate(7, 200), generate(7, 200));
    }

    #[test]
    fn every_valid_record_reads_back_as_generated() {
        let today = crate::domain::Date { year: 2026, month: 1, day: 1 };
        let records = generate(3, 500);
        let mut valid = 0;
        for r in &records {
            if let Ok(v) = crate::convert::source_record(r.clone(), today) {
                assert_eq!(&pb::SourceRecord::from(v.record), r);
                valid += 1;
            }
        }
        assert!(valid > 450, "{valid} of 500 valid");
    }

    #[test]
    fn about_a_third_of_people_are_known_to_two_systems() {
        let records = generate(1, 10_000);
        let people: std::collections::HashSet<String> = records
            .iter()
            .map(|r| {
                r.key
                    .as_ref()
                    .map(|k| k.source_customer_id.split('-').nth(1).unwrap_or("").to_string())
                    .unwrap_or_default()
            })
            .collect();
        let known_twice = records.len() - people.len();
        let share = known_twice as f64 / people.len() as f64;
        assert!((0.25..0.35).contains(&share), "cross-system share {share}");
        let systems: std::collections::HashSet<_> =
            records.iter().map(|r| r.key.as_ref().unwrap().source_system.clone()).collect();
        assert_eq!(systems.len(), 3);
        let fifteen = records.iter().filter(|r| r.id_number.len() == 15).count();
        let other = records.iter().filter(|r| r.id_type == pb::IdType::Other as i32).count();
        assert!(fifteen > 100 && other > 100, "mix holds 15-digit ({fifteen}) and other ({other}) ids");
    }
}

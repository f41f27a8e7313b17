//! The demo's store-sales events: what `demo-producer` writes to the local
//! broker `scripts/dev.sh` starts, and what the browser tests feed the wizard.
//!
//! Message `i` is a pure function of `(seed, i, start)`, so a run can be
//! replayed exactly; every `bad_every`-th message is malformed on purpose
//! (invalid JSON or a wrong type) so the dead-letter table has something in it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// The demo's topic, created by `demo-producer`.
pub const DEMO_TOPIC: &str = "demo.store_sales";

/// Store, region, country, city and currency of each demo store.
const STORES: [(&str, &str, &str, &str, &str); 8] = [
    ("LIS-01", "EMEA", "PT", "Lisbon", "EUR"),
    ("BER-02", "EMEA", "DE", "Berlin", "EUR"),
    ("LON-03", "EMEA", "GB", "London", "GBP"),
    ("NYC-04", "AMER", "US", "New York", "USD"),
    ("SFO-05", "AMER", "US", "San Francisco", "USD"),
    ("SAO-06", "AMER", "BR", "São Paulo", "BRL"),
    ("TYO-07", "APAC", "JP", "Tokyo", "JPY"),
    ("SYD-08", "APAC", "AU", "Sydney", "AUD"),
];

/// Product and its unit price in cents (of the store's currency; yen has none).
const PRODUCTS: [(&str, u64); 10] = [
    ("espresso machine", 24_900),
    ("grinder", 8_950),
    ("kettle", 3_499),
    ("french press", 2_750),
    ("milk frother", 4_200),
    ("coffee beans 1kg", 1_890),
    ("tea sampler", 1_250),
    ("travel mug", 1_999),
    ("scale", 2_999),
    ("descaler", 699),
];

const FIRST_NAMES: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald"];
const LAST_NAMES: [&str; 8] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth"];
const TIERS: [&str; 3] = ["bronze", "silver", "gold"];

/// What kind of message [`store_sale`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Good,
    /// Not JSON at all (a record cut off mid-way).
    InvalidJson,
    /// JSON, but `quantity` is a word instead of an integer.
    WrongType,
}

/// How a stream of demo events is made.
#[derive(Clone, Copy, Debug)]
pub struct DemoStream {
    pub seed: u64,
    /// `sold_at` of message 0; message `i` is `i * spacing_ms` later, plus jitter.
    pub start: DateTime<Utc>,
    pub spacing_ms: u64,
    /// Every `bad_every`-th message is malformed; 0 = none.
    pub bad_every: u64,
}

impl DemoStream {
    /// Message `i`: its key (the store), its value and its kind.
    pub fn message(&self, i: u64) -> (String, Vec<u8>, Kind) {
        store_sale(self, i)
    }
}

/// SplitMix64: tiny, fast and fixed forever, unlike a library RNG whose
/// stream may change between versions (which would break replay by seed).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn store_sale(stream: &DemoStream, i: u64) -> (String, Vec<u8>, Kind) {
    // One generator per message, so message i never depends on the ones before it.
    let mut rng = SplitMix64(stream.seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let (store, region, country, city, currency) = *rng.pick(&STORES);
    let (product, cents) = *rng.pick(&PRODUCTS);
    let quantity = 1 + rng.below(4) + if rng.below(10) == 0 { 10 } else { 0 };
    // Yen has no minor unit: round the price to whole yen (x 150 as a rough rate).
    let unit_price = if currency == "JPY" { (cents * 150 / 100) as f64 } else { cents as f64 / 100.0 };
    let jitter = rng.below(stream.spacing_ms.max(1));
    let sold_at = stream.start + chrono::Duration::milliseconds((i * stream.spacing_ms + jitter) as i64);
    let customer_no = rng.below(5_000);
    let kind = match stream.bad_every {
        n if n > 0 && (i + 1).is_multiple_of(n) => {
            if (i + 1) / n % 2 == 1 {
                Kind::InvalidJson
            } else {
                Kind::WrongType
            }
        }
        _ => Kind::Good,
    };
    let quantity = match kind {
        Kind::WrongType => text("three"),
        _ => quantity.to_string(),
    };
    let customer = object(&[
        ("id", text(format!("C{customer_no:05}"))),
        (
            "name",
            text(format!("{} {}", FIRST_NAMES[(customer_no % 8) as usize], LAST_NAMES[(customer_no / 8 % 8) as usize])),
        ),
        ("tier", text(TIERS[(customer_no % 3) as usize])),
        (
            "member_since",
            text(format!("20{:02}-{:02}-{:02}", 15 + customer_no % 10, 1 + customer_no % 12, 1 + customer_no % 28)),
        ),
    ]);
    let sale = object(&[
        ("sale_id", text(i + 1)),
        ("store", text(store)),
        ("region", text(region)),
        ("country", text(country)),
        ("city", text(city)),
        ("product", text(product)),
        ("quantity", quantity),
        ("unit_price", text(unit_price)),
        ("currency", text(currency)),
        ("sold_at", text(sold_at.to_rfc3339_opts(SecondsFormat::Millis, true))),
        ("customer", customer),
    ]);
    let value = match kind {
        Kind::InvalidJson => sale.as_bytes()[..sale.len() / 2].to_vec(),
        Kind::Good | Kind::WrongType => sale.into_bytes(),
    };
    (store.to_string(), value, kind)
}

/// JSON text of a value.
fn text(value: impl Into<Value>) -> String {
    value.into().to_string()
}

/// A JSON object with its keys in the order given, as a producer written by
/// hand would send it (serde_json's own maps sort their keys), from
/// `(key, JSON text of the value)` pairs.
fn object(members: &[(&str, String)]) -> String {
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", text(*k))).collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64) -> DemoStream {
        DemoStream { seed, start: "2026-11-20T09:00:00Z".parse().unwrap(), spacing_ms: 250, bad_every: 25 }
    }

    #[test]
    fn the_same_seed_gives_the_same_messages_and_another_seed_others() {
        let a: Vec<_> = (0..200).map(|i| stream(7).message(i)).collect();
        let b: Vec<_> = (0..200).map(|i| stream(7).message(i)).collect();
        let c: Vec<_> = (0..200).map(|i| stream(8).message(i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn good_messages_have_every_field_with_its_type() {
        let (key, value, kind) = stream(1).message(0);
        assert_eq!(kind, Kind::Good);
        let v: Value = serde_json::from_slice(&value).unwrap();
        let text = String::from_utf8(value).unwrap();
        assert!(text.starts_with(r#"{"sale_id":1,"store":"#), "keys in their natural order: {text}");
        assert!(text.contains(r#""customer":{"id":"C"#), "{text}");
        assert_eq!(v["store"], key.as_str());
        assert_eq!(v["sale_id"], 1);
        assert!(v["quantity"].is_u64());
        assert!(v["unit_price"].is_f64() || v["unit_price"].is_u64());
        let at = v["sold_at"].as_str().unwrap();
        assert!(at.starts_with("2026-11-20T09:00:00.") && at.ends_with('Z'), "{at}");
        assert!(v["customer"]["id"].as_str().unwrap().starts_with('C'));
        for field in ["region", "country", "city", "product", "currency"] {
            assert!(v[field].is_string(), "{field}: {v}");
        }
    }

    #[test]
    fn every_bad_every_th_message_is_malformed_alternating_kinds() {
        let s = stream(3);
        let kinds: Vec<Kind> = (0..100).map(|i| s.message(i).2).collect();
        assert_eq!(kinds.iter().filter(|k| **k == Kind::InvalidJson).count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::WrongType).count(), 2);
        assert_eq!(kinds[24], Kind::InvalidJson);
        assert_eq!(kinds[49], Kind::WrongType);
        assert!(serde_json::from_slice::<Value>(&s.message(24).1).is_err());
        let wrong: Value = serde_json::from_slice(&s.message(49).1).unwrap();
        assert_eq!(wrong["quantity"], "three");
        let none = DemoStream { bad_every: 0, ..s };
        assert!((0..100).all(|i| none.message(i).2 == Kind::Good));
    }

    /// The suggestion's corpus holds the demo topic's first 100 messages as
    /// demo-producer writes them by default: keep the two in step.
    #[test]
    fn the_suggestion_corpus_has_the_demo_topic_as_written() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../workers/tests/suggest_corpus/demo_topic.json");
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let stream =
            DemoStream { seed: 42, start: "2026-11-20T09:00:00Z".parse().unwrap(), spacing_ms: 250, bad_every: 40 };
        let (mut objects, mut cut) = (Vec::new(), Vec::new());
        for i in 0..100 {
            match stream.message(i) {
                (_, value, Kind::InvalidJson) => cut.push(Value::from(String::from_utf8(value).unwrap())),
                (_, value, _) => objects.push(serde_json::from_slice::<Value>(&value).unwrap()),
            }
        }
        assert_eq!(case["messages"], Value::from(objects));
        assert_eq!(case["texts"], Value::from(cut));
    }
}

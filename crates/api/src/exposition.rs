//! The Prometheus text exposition format (version 0.0.4), written by hand: metric families
//! with their `# HELP` and `# TYPE` lines, then their samples `name{label="value"} value`.
//! Pure string building; what to expose is decided in [`crate::metrics`].

use std::fmt::Write as _;

/// The `Content-Type` of a scrape response in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two metric types Switchboard exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only ever goes up (reset when the process restarts); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// A sample's value: counts are exact integers, durations are seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue {
    Integer(u64),
    Float(f64),
}

impl From<u64> for SampleValue {
    fn from(value: u64) -> SampleValue {
        SampleValue::Integer(value)
    }
}

impl From<f64> for SampleValue {
    fn from(value: f64) -> SampleValue {
        SampleValue::Float(value)
    }
}

/// A scrape response being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name` (its HELP and TYPE lines); its samples follow through the
    /// returned [`Family`]. Each name must be started once per exposition.
    pub fn family(&mut self, name: &'static str, kind: MetricType, help: &str) -> Family<'_> {
        debug_assert!(is_metric_name(name), "bad metric name {name:?}");
        debug_assert!(
            kind != MetricType::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        Family {
            exposition: self,
            name,
        }
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// The samples of one metric family.
#[derive(Debug)]
pub struct Family<'a> {
    exposition: &'a mut Exposition,
    name: &'static str,
}

impl Family<'_> {
    /// One sample: `name{labels} value`, or `name value` without labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<SampleValue>) -> &mut Self {
        let text = &mut self.exposition.text;
        text.push_str(self.name);
        if !labels.is_empty() {
            text.push('{');
            for (index, (name, value)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(name), "bad label name {name:?}");
                if index > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{name}=\"{}\"", escape_label_value(value));
            }
            text.push('}');
        }
        text.push(' ');
        match value.into() {
            SampleValue::Integer(value) => {
                let _ = write!(text, "{value}");
            }
            SampleValue::Float(value) => write_float(text, value),
        }
        text.push('\n');
        self
    }
}

fn write_float(text: &mut String, value: f64) {
    if value.is_nan() {
        text.push_str("NaN");
    } else if value.is_infinite() {
        text.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Rust prints floats in full decimal (no exponent), which Prometheus parses.
        let _ = write!(text, "{value}");
    }
}

/// HELP text: backslash and line feed escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values: backslash, double quote and line feed escaped.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// One sample line, parsed back.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    /// A parsed exposition: each family's type and samples, in order.
    #[derive(Debug, Default)]
    pub(crate) struct Parsed {
        pub types: BTreeMap<String, String>,
        pub samples: Vec<Sample>,
    }

    impl Parsed {
        /// The value of the sample `name` whose labels include every pair of `labels`;
        /// panics unless exactly one matches.
        pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
            let matching: Vec<_> = self
                .samples
                .iter()
                .filter(|s| {
                    s.name == name
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .collect();
            assert_eq!(matching.len(), 1, "{name} {labels:?}: {matching:?}");
            matching[0].value
        }
    }

    /// Parses `text` strictly, panicking on anything the 0.0.4 format does not allow or
    /// Switchboard's conventions forbid: every line is a HELP, a TYPE or a sample
    /// `name{labels} value`; each family has HELP then TYPE once, before its samples, which
    /// are contiguous and carry the family's name; counters end in `_total`; no two samples
    /// have the same name and labels; the text ends with a line feed.
    pub(crate) fn parse(text: &str) -> Parsed {
        assert!(text.ends_with('\n'), "must end with a line feed");
        let mut parsed = Parsed::default();
        let mut helped = BTreeSet::new();
        let mut current: Option<String> = None;
        let mut seen = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _help) = rest.split_once(' ').expect("HELP name text");
                assert!(is_metric_name(name), "{line}");
                assert!(helped.insert(name.to_string()), "second HELP for {name}");
                current = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(helped.contains(name), "TYPE before HELP: {line}");
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                let previous = parsed.types.insert(name.to_string(), kind.to_string());
                assert!(previous.is_none(), "second TYPE for {name}");
                current = Some(name.to_string());
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line:?}");
                let sample = parse_sample(line);
                assert_eq!(
                    Some(&sample.name),
                    current.as_ref(),
                    "sample outside its family: {line}"
                );
                let key = format!("{}{:?}", sample.name, sample.labels);
                assert!(seen.insert(key), "duplicate sample {line}");
                parsed.samples.push(sample);
            }
        }
        assert_eq!(helped.len(), parsed.types.len(), "HELP without TYPE");
        parsed
    }

    fn parse_sample(line: &str) -> Sample {
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad name in {line:?}");
        let mut chars = line[name_end..].chars().peekable();
        let mut labels = BTreeMap::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            loop {
                let mut label = String::new();
                loop {
                    match chars.next().expect("unterminated label name") {
                        '=' => break,
                        c => label.push(c),
                    }
                }
                assert!(is_label_name(&label), "bad label {label:?} in {line:?}");
                assert_eq!(chars.next(), Some('"'), "unquoted value in {line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("unterminated label value") {
                        '\\' => match chars.next().expect("dangling escape") {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line:?}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                assert!(labels.insert(label, value).is_none(), "{line}");
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    other => panic!("unexpected {other:?} in {line:?}"),
                }
            }
        }
        let rest: String = chars.collect();
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line:?}"));
        assert!(!value.contains(' '), "timestamps are not used: {line:?}");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        Sample {
            name: name.to_string(),
            labels,
            value,
        }
    }

    #[test]
    fn families_and_samples_are_written_in_the_text_format() {
        let mut out = Exposition::new();
        out.family("up_total", MetricType::Counter, "Ups.")
            .sample(&[], 3u64);
        out.family("temperature", MetricType::Gauge, "Heat.")
            .sample(&[("room", "a"), ("floor", "1")], 21.5)
            .sample(&[("room", "b"), ("floor", "1")], 0u64);
        assert_eq!(
            out.finish(),
            "# HELP up_total Ups.\n# TYPE up_total counter\nup_total 3\n\
             # HELP temperature Heat.\n# TYPE temperature gauge\n\
             temperature{room=\"a\",floor=\"1\"} 21.5\ntemperature{room=\"b\",floor=\"1\"} 0\n"
        );
    }

    #[test]
    fn awkward_text_is_escaped_and_parses_back() {
        let mut out = Exposition::new();
        let odd = "a \"quoted\" \\ back\nslash, {braces}=";
        out.family(
            "odd_total",
            MetricType::Counter,
            "Help with \\ and\nnewline.",
        )
        .sample(&[("what", odd)], u64::MAX)
        .sample(&[("what", "")], 0u64);
        out.family("floats", MetricType::Gauge, "Floats.")
            .sample(&[("v", "tiny")], 1.5e-9)
            .sample(&[("v", "huge")], 1e21)
            .sample(&[("v", "nan")], f64::NAN)
            .sample(&[("v", "inf")], f64::INFINITY)
            .sample(&[("v", "-inf")], f64::NEG_INFINITY);
        let text = out.finish();
        assert!(text.contains("# HELP odd_total Help with \\\\ and\\nnewline.\n"));
        let parsed = parse(&text);
        assert_eq!(parsed.value("odd_total", &[("what", odd)]), u64::MAX as f64);
        assert_eq!(parsed.value("odd_total", &[("what", "")]), 0.0);
        assert_eq!(parsed.value("floats", &[("v", "tiny")]), 1.5e-9);
        assert_eq!(parsed.value("floats", &[("v", "huge")]), 1e21);
        assert!(parsed.value("floats", &[("v", "nan")]).is_nan());
        assert_eq!(parsed.value("floats", &[("v", "inf")]), f64::INFINITY);
        assert_eq!(parsed.value("floats", &[("v", "-inf")]), f64::NEG_INFINITY);
    }

    #[test]
    fn the_strict_parser_rejects_what_the_format_does_not_allow() {
        for bad in [
            "x 1\n",                                                     // no family
            "# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n", // duplicate
            "# HELP x X.\n# TYPE x gauge\ny 1\n",                        // other name
            "# HELP x_total X.\n# TYPE x_total counter\nx_total one\n",  // bad value
            "# HELP x X.\n# TYPE x counter\nx 1\n",                      // counter name
            "# HELP x X.\n# TYPE x gauge\nx{a=1} 1\n",                   // unquoted
            "# HELP x X.\n# TYPE x gauge\nx 1",                          // no final line feed
            "# HELP x X.\n# HELP x X.\n# TYPE x gauge\n",                // two HELPs
        ] {
            assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(is_metric_name("switchboard_calls_ended_total"));
        assert!(is_metric_name("a:b"));
        assert!(!is_metric_name("9lives"));
        assert!(!is_metric_name("with-dash"));
        assert!(!is_metric_name(""));
        assert!(is_label_name("worker"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a:b"));
    }
}

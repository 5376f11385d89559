//! Twilio `<Say>` voice and language attributes → an espeak-ng voice spec
//! (`<language>+<variant>`, e.g. `en-gb+f3`). Pure mapping, no I/O.
//!
//! Language: Twilio's BCP-47 tags are lower-cased and matched against the languages
//! espeak-ng 1.51 ships (`espeak-ng --voices`), first in full (`en-gb`, `pt-br`, `fr-be`),
//! then through a table for regions espeak names differently (`es-MX` → `es-419`,
//! `zh-CN` → `cmn`, `en-AU` → `en-gb`, …), then by primary subtag (`de-AT` → `de`);
//! anything unknown falls back to `en-us`. When the language is empty, a `Google.xx-YY-…`
//! voice name supplies it.
//!
//! Gender: `man` (Twilio's default) and the male Polly voices get espeak's `m3` variant;
//! `woman`, `alice`, other `Polly.*` and `Google.*` voices get `f3`.

/// Languages espeak-ng 1.51 provides (`espeak-ng --voices`, "Language" column).
const ESPEAK_LANGUAGES: &[&str] = &[
    "af",
    "am",
    "an",
    "ar",
    "as",
    "az",
    "ba",
    "be",
    "bg",
    "bn",
    "bpy",
    "bs",
    "ca",
    "chr-us-qaaa-x-west",
    "cmn",
    "cmn-latn-pinyin",
    "cs",
    "cv",
    "cy",
    "da",
    "de",
    "el",
    "en-029",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-us",
    "en-us-nyc",
    "eo",
    "es",
    "es-419",
    "et",
    "eu",
    "fa",
    "fa-latn",
    "fi",
    "fr-be",
    "fr-ch",
    "fr-fr",
    "ga",
    "gd",
    "gn",
    "grc",
    "gu",
    "hak",
    "haw",
    "he",
    "hi",
    "hr",
    "ht",
    "hu",
    "hy",
    "hyw",
    "ia",
    "id",
    "io",
    "is",
    "it",
    "ja",
    "jbo",
    "ka",
    "kk",
    "kl",
    "kn",
    "ko",
    "kok",
    "ku",
    "ky",
    "la",
    "lb",
    "lfn",
    "lt",
    "ltg",
    "lv",
    "mi",
    "mk",
    "ml",
    "mr",
    "ms",
    "mt",
    "my",
    "nb",
    "nci",
    "ne",
    "nl",
    "nog",
    "om",
    "or",
    "pa",
    "pap",
    "piqd",
    "pl",
    "pt",
    "pt-br",
    "py",
    "qdb",
    "qu",
    "quc",
    "qya",
    "ro",
    "ru",
    "ru-lv",
    "sd",
    "shn",
    "si",
    "sjn",
    "sk",
    "sl",
    "smj",
    "sq",
    "sr",
    "sv",
    "sw",
    "ta",
    "te",
    "th",
    "tk",
    "tn",
    "tr",
    "tt",
    "ug",
    "uk",
    "ur",
    "uz",
    "vi",
    "vi-vn-x-central",
    "vi-vn-x-south",
    "yue",
];

/// Regional tags espeak spells differently, and primary subtags that are not espeak
/// language names by themselves.
const LANGUAGE_ALIASES: &[(&str, &str)] = &[
    ("en", "en-us"),
    ("en-au", "en-gb"),
    ("en-nz", "en-gb"),
    ("en-ie", "en-gb"),
    ("en-in", "en-gb"),
    ("en-za", "en-gb"),
    ("en-ca", "en-us"),
    ("es-es", "es"),
    ("fr", "fr-fr"),
    ("fr-ca", "fr-fr"),
    ("pt-pt", "pt"),
    ("zh", "cmn"),
    ("zh-cn", "cmn"),
    ("zh-tw", "cmn"),
    ("zh-sg", "cmn"),
    ("zh-hk", "yue"),
    ("cmn-cn", "cmn"),
    ("cmn-tw", "cmn"),
    ("yue-hk", "yue"),
    ("no", "nb"),
    ("nb-no", "nb"),
    ("nn-no", "nb"),
    ("fil", "id"),
    ("iw", "he"),
];

/// Fallback when nothing matches.
const DEFAULT_LANGUAGE: &str = "en-us";

/// Amazon Polly voices (as Twilio names them, `Polly.<Name>[-Neural|-Generative]`) that are male.
const POLLY_MALE: &[&str] = &[
    "matthew",
    "joey",
    "justin",
    "kevin",
    "stephen",
    "gregory",
    "brian",
    "arthur",
    "russell",
    "geraint",
    "miguel",
    "enrique",
    "sergio",
    "andres",
    "pedro",
    "mathieu",
    "remi",
    "rémi",
    "liam",
    "hans",
    "daniel",
    "giorgio",
    "adriano",
    "ricardo",
    "cristiano",
    "thiago",
    "takumi",
    "jacek",
    "jan",
    "maxim",
    "mads",
    "ruben",
    "karl",
    "hala_male",
    "zayd",
    "hiujin_male",
    "kajal_male",
];

/// espeak's gendered voice variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    fn variant(self) -> &'static str {
        match self {
            Gender::Male => "m3",
            Gender::Female => "f3",
        }
    }
}

/// The gender a Twilio voice name asks for.
pub fn voice_gender(voice: &str) -> Gender {
    let lower = voice.trim().to_ascii_lowercase();
    if lower.is_empty() || lower == "man" || lower == "male" {
        return Gender::Male;
    }
    if let Some(name) = lower.strip_prefix("polly.") {
        let base = name.split(['-', '.']).next().unwrap_or(name);
        if POLLY_MALE.contains(&base) {
            return Gender::Male;
        }
    }
    Gender::Female
}

/// The espeak language for a Twilio language tag (`en-US`, `es_MX`, `de`).
pub fn espeak_language(language: &str) -> &'static str {
    let tag = language.trim().to_ascii_lowercase().replace('_', "-");
    if tag.is_empty() {
        return DEFAULT_LANGUAGE;
    }
    let lookup = |candidate: &str| -> Option<&'static str> {
        if let Some((_, to)) = LANGUAGE_ALIASES.iter().find(|(from, _)| *from == candidate) {
            return Some(to);
        }
        ESPEAK_LANGUAGES
            .iter()
            .find(|known| **known == candidate)
            .copied()
    };
    if let Some(found) = lookup(&tag) {
        return found;
    }
    let primary = tag.split('-').next().unwrap_or("");
    if primary == "es" {
        // Every Spanish region but Spain is Latin American Spanish to espeak.
        return "es-419";
    }
    lookup(primary).unwrap_or(DEFAULT_LANGUAGE)
}

/// The espeak-ng `-v` argument for a Twilio voice and language, e.g. `en-us+m3`.
pub fn espeak_voice(voice: &str, language: &str) -> String {
    let mut language_tag = language.trim();
    let voice_trimmed = voice.trim();
    if language_tag.is_empty() {
        // `Google.en-GB-Standard-A` carries its language in the name.
        if let Some(rest) = voice_trimmed.strip_prefix("Google.") {
            let mut parts = rest.splitn(3, '-');
            if let (Some(lang), Some(region)) = (parts.next(), parts.next()) {
                let end = lang.len() + 1 + region.len();
                language_tag = rest.get(..end).unwrap_or("");
            }
        }
    }
    format!(
        "{}+{}",
        espeak_language(language_tag),
        voice_gender(voice_trimmed).variant()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert_eq!(espeak_language("en-US"), "en-us");
        assert_eq!(espeak_language("en-GB"), "en-gb");
        assert_eq!(espeak_language("en-AU"), "en-gb");
        assert_eq!(espeak_language("es-ES"), "es");
        assert_eq!(espeak_language("es-MX"), "es-419");
        assert_eq!(espeak_language("fr-FR"), "fr-fr");
        assert_eq!(espeak_language("fr-CA"), "fr-fr");
        assert_eq!(espeak_language("de-DE"), "de");
        assert_eq!(espeak_language("it-IT"), "it");
        assert_eq!(espeak_language("pt-BR"), "pt-br");
        assert_eq!(espeak_language("pt-PT"), "pt");
        assert_eq!(espeak_language("zh-CN"), "cmn");
        assert_eq!(espeak_language("zh-HK"), "yue");
        assert_eq!(espeak_language("ja-JP"), "ja");
        assert_eq!(espeak_language("nb-NO"), "nb");
        assert_eq!(espeak_language("ru_RU"), "ru");
        assert_eq!(espeak_language("xx-YY"), "en-us");
        assert_eq!(espeak_language(""), "en-us");
    }

    #[test]
    fn genders() {
        assert_eq!(voice_gender("man"), Gender::Male);
        assert_eq!(voice_gender(""), Gender::Male);
        assert_eq!(voice_gender("woman"), Gender::Female);
        assert_eq!(voice_gender("alice"), Gender::Female);
        assert_eq!(voice_gender("Polly.Joanna"), Gender::Female);
        assert_eq!(voice_gender("Polly.Matthew"), Gender::Male);
        assert_eq!(voice_gender("Polly.Matthew-Neural"), Gender::Male);
        assert_eq!(voice_gender("Google.en-US-Standard-C"), Gender::Female);
    }

    #[test]
    fn voices() {
        assert_eq!(espeak_voice("man", "en-US"), "en-us+m3");
        assert_eq!(espeak_voice("alice", "en-GB"), "en-gb+f3");
        assert_eq!(espeak_voice("Polly.Hans", "de-DE"), "de+m3");
        assert_eq!(espeak_voice("Google.fr-FR-Standard-A", ""), "fr-fr+f3");
        assert_eq!(espeak_voice("woman", "klingon"), "en-us+f3");
    }
}

//! Call-progress tones and platform sounds as telephony-ready audio: the ringback a caller
//! hears while a `<Dial>` rings (one file holds one cadence cycle, tone bursts then the
//! pause, so a `Play` with `loops = 0` repeats it for as long as the call rings), and the
//! [`Melody`]s of conferences: the enter and exit beeps and the platform's hold music.
//!
//! Frequencies and cadences follow ITU-T E.180 Supplement 2 for the countries Twilio's
//! `ringTone` names most often; any other country gets the North American tone.

use std::f64::consts::TAU;

use media::g711::linear_to_ulaw;

use crate::decode::TELEPHONY_RATE;

/// Peak amplitude of each frequency of a tone (about −19 dBm0 per component: two of them
/// stay well clear of clipping).
const TONE_AMPLITUDE: f64 = 2600.0;

/// A ringback tone: the frequencies sounding together during a burst, and the cycle as
/// (tone on, silence after it) pairs in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ringback {
    /// A short name for the tone (the cache key).
    pub name: &'static str,
    pub frequencies_hz: &'static [u32],
    pub cadence_ms: &'static [(u32, u32)],
}

/// North America (Twilio's default): 440 + 480 Hz, 2 s on, 4 s off.
pub const RINGBACK_US: Ringback = Ringback {
    name: "us",
    frequencies_hz: &[440, 480],
    cadence_ms: &[(2000, 4000)],
};

/// UK, Ireland, Australia, New Zealand: 400 + 450 Hz, 0.4 on 0.2 off 0.4 on 2 off.
pub const RINGBACK_UK: Ringback = Ringback {
    name: "uk",
    frequencies_hz: &[400, 450],
    cadence_ms: &[(400, 200), (400, 2000)],
};

/// Most of continental Europe: 425 Hz, 1 s on, 4 s off.
pub const RINGBACK_EUROPE: Ringback = Ringback {
    name: "eu",
    frequencies_hz: &[425],
    cadence_ms: &[(1000, 4000)],
};

/// France: 440 Hz, 1.5 s on, 3.5 s off.
pub const RINGBACK_FR: Ringback = Ringback {
    name: "fr",
    frequencies_hz: &[440],
    cadence_ms: &[(1500, 3500)],
};

/// The ringback for Twilio's `ringTone` country code (case-insensitive); `None` or an
/// unknown code gets the North American tone.
pub fn ringback_for(country: Option<&str>) -> Ringback {
    let code = country.unwrap_or("us").trim().to_ascii_lowercase();
    match code.as_str() {
        "uk" | "gb" | "ie" | "au" | "nz" => RINGBACK_UK,
        "fr" => RINGBACK_FR,
        "de" | "at" | "ch" | "nl" | "be" | "dk" | "se" | "no" | "fi" | "it" | "pl" | "cz"
        | "hu" | "pt" | "gr" | "ee" | "lt" | "bg" | "ru" => RINGBACK_EUROPE,
        _ => RINGBACK_US,
    }
}

/// One cycle of `tone` as raw μ-law at 8 kHz.
pub fn render_ulaw(tone: &Ringback) -> Vec<u8> {
    let rate = f64::from(TELEPHONY_RATE);
    let samples_per_ms = TELEPHONY_RATE / 1000;
    let mut out = Vec::new();
    for &(on_ms, off_ms) in tone.cadence_ms {
        let on = on_ms * samples_per_ms;
        out.extend((0..on).map(|n| {
            let t = f64::from(n) / rate;
            let value: f64 = tone
                .frequencies_hz
                .iter()
                .map(|&f| TONE_AMPLITUDE * (TAU * f64::from(f) * t).sin())
                .sum();
            linear_to_ulaw(value.round().clamp(-32768.0, 32767.0) as i16)
        }));
        let off = off_ms * samples_per_ms;
        out.extend(std::iter::repeat_n(linear_to_ulaw(0), off as usize));
    }
    out
}

/// A short sequence of notes (frequencies sounding together, for so many milliseconds; no
/// frequency is a rest), each note faded in and out over a few milliseconds so it does not
/// click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Melody {
    /// A short name for the sound (the cache key; distinct from the ringbacks' names).
    pub name: &'static str,
    pub notes: &'static [(&'static [u32], u32)],
}

/// A participant entered a conference: a rising two-note beep.
pub const BEEP_ENTER: Melody = Melody {
    name: "beep-enter",
    notes: &[(&[880], 120), (&[1320], 180)],
};

/// A participant left a conference: a falling two-note beep.
pub const BEEP_EXIT: Melody = Melody {
    name: "beep-exit",
    notes: &[(&[1320], 120), (&[880], 180)],
};

/// The wait and hold music when the application names none: a slow C-major arpeggio with a
/// rest, about four seconds per cycle (played looping).
pub const HOLD_MUSIC: Melody = Melody {
    name: "hold-music",
    notes: &[
        (&[262], 350),
        (&[], 50),
        (&[330], 350),
        (&[], 50),
        (&[392], 350),
        (&[], 50),
        (&[523], 500),
        (&[], 100),
        (&[392], 350),
        (&[], 50),
        (&[330], 350),
        (&[], 50),
        (&[262, 392], 700),
        (&[], 1000),
    ],
};

/// Fade in/out of each note, in samples (5 ms).
const NOTE_RAMP: u32 = 40;

/// `melody` as raw μ-law at 8 kHz.
pub fn render_melody_ulaw(melody: &Melody) -> Vec<u8> {
    let rate = f64::from(TELEPHONY_RATE);
    let samples_per_ms = TELEPHONY_RATE / 1000;
    let mut out = Vec::new();
    for &(frequencies, ms) in melody.notes {
        let len = ms * samples_per_ms;
        out.extend((0..len).map(|n| {
            let t = f64::from(n) / rate;
            let edge = n.min(len.saturating_sub(1).saturating_sub(n));
            let ramp = f64::from(edge.min(NOTE_RAMP)) / f64::from(NOTE_RAMP);
            let value: f64 = frequencies
                .iter()
                .map(|&f| ramp * TONE_AMPLITUDE * (TAU * f64::from(f) * t).sin())
                .sum();
            linear_to_ulaw(value.round().clamp(-32768.0, 32767.0) as i16)
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::g711::ulaw_to_linear;

    /// Power of `samples` at `freq` (Goertzel), normalised by length.
    fn power_at(samples: &[i16], freq: f64) -> f64 {
        let coeff = 2.0 * (TAU * freq / f64::from(TELEPHONY_RATE)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2)
    }

    #[test]
    fn us_ringback_is_440_plus_480_two_seconds_on_four_off() {
        let ulaw = render_ulaw(&RINGBACK_US);
        assert_eq!(ulaw.len(), 6 * 8000, "one 6 s cycle");
        let linear: Vec<i16> = ulaw.iter().map(|&b| ulaw_to_linear(b)).collect();
        let (on, off) = linear.split_at(16000);
        assert!(off.iter().all(|&s| s.abs() <= 8), "silence after the burst");
        let p440 = power_at(on, 440.0);
        let p480 = power_at(on, 480.0);
        let p1000 = power_at(on, 1000.0);
        assert!(
            p440 > 100.0 * p1000 && p480 > 100.0 * p1000,
            "{p440} {p480} {p1000}"
        );
        let peak = on.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(
            (4000..=5400).contains(&peak),
            "two components of 2600: {peak}"
        );
    }

    #[test]
    fn countries_pick_their_cadence_and_unknown_ones_get_the_us_tone() {
        assert_eq!(ringback_for(None), RINGBACK_US);
        assert_eq!(ringback_for(Some("UK")), RINGBACK_UK);
        assert_eq!(ringback_for(Some("de")), RINGBACK_EUROPE);
        assert_eq!(ringback_for(Some("fr")), RINGBACK_FR);
        assert_eq!(ringback_for(Some("xx")), RINGBACK_US);
        assert_eq!(render_ulaw(&RINGBACK_UK).len(), 3 * 8000);
    }

    #[test]
    fn beeps_rise_and_fall_and_hold_music_loops_a_few_seconds() {
        let enter: Vec<i16> = render_melody_ulaw(&BEEP_ENTER)
            .into_iter()
            .map(ulaw_to_linear)
            .collect();
        assert_eq!(enter.len(), 300 * 8);
        let (first, second) = enter.split_at(120 * 8);
        assert!(power_at(first, 880.0) > 10.0 * power_at(first, 1320.0));
        assert!(power_at(second, 1320.0) > 10.0 * power_at(second, 880.0));
        let exit: Vec<i16> = render_melody_ulaw(&BEEP_EXIT)
            .into_iter()
            .map(ulaw_to_linear)
            .collect();
        let (first, _) = exit.split_at(120 * 8);
        assert!(power_at(first, 1320.0) > 10.0 * power_at(first, 880.0));
        // Notes start from silence (no click) and the names never clash with ringbacks.
        assert!(enter[0].abs() < 64, "{}", enter[0]);
        let hold = render_melody_ulaw(&HOLD_MUSIC);
        let seconds = hold.len() as f64 / 8000.0;
        assert!((3.0..6.0).contains(&seconds), "{seconds}");
        for name in [BEEP_ENTER.name, BEEP_EXIT.name, HOLD_MUSIC.name] {
            assert_ne!(ringback_for(Some(name)).name, name);
        }
    }
}

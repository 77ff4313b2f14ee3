//! How pages show things: times (absolute and relative), durations, and the pagination links
//! of lists.

use crate::oauth::Params;

/// Pagination links for a list page: the page numbers and the query string of the list's
/// filters, so that "next" keeps them.
#[derive(Clone, Debug)]
pub struct PageNav {
    /// 1-based page number.
    pub number: i64,
    /// Number of pages (≥ 1).
    pub pages: i64,
    /// Items in the whole list.
    pub total: i64,
    /// The list's path.
    path: String,
    /// The filters as `key=value&…` (already encoded), without `page`.
    filters: String,
}

impl PageNav {
    /// Links for `page` of the list at `path` filtered by `filters` (name, value) pairs; empty
    /// values are left out.
    #[must_use]
    pub fn new<T>(page: &crate::domain::Page<T>, path: &str, filters: &[(&str, &str)]) -> Self {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters.iter().filter(|(_, v)| !v.is_empty()) {
            query.append_pair(k, v);
        }
        Self {
            number: page.number,
            pages: page.pages(),
            total: page.total,
            path: path.to_owned(),
            filters: query.finish(),
        }
    }

    fn href(&self, number: i64) -> String {
        if self.filters.is_empty() {
            format!("{}?page={number}", self.path)
        } else {
            format!("{}?{}&page={number}", self.path, self.filters)
        }
    }

    /// The previous page's URL, if there is one.
    #[must_use]
    pub fn prev_href(&self) -> Option<String> {
        (self.number > 1).then(|| self.href((self.number - 1).min(self.pages)))
    }

    /// The next page's URL, if there is one.
    #[must_use]
    pub fn next_href(&self) -> Option<String> {
        (self.number < self.pages).then(|| self.href(self.number + 1))
    }
}

/// The `page` query parameter (1-based); anything unparsable is page 1.
#[must_use]
pub fn page_number(params: &Params) -> Option<i64> {
    params.get("page").and_then(|p| p.trim().parse().ok())
}

/// The ticked checkboxes named `PREFIX<value>`, as the values (forms cannot repeat a name:
/// see `Params`).
#[must_use]
pub fn ticked(form: &Params, prefix: &str) -> Vec<String> {
    form.iter()
        .filter_map(|(name, _)| name.strip_prefix(prefix))
        .map(str::to_owned)
        .collect()
}

/// Formats a UTC timestamp for pages: `2026-11-22 14:05 UTC`.
#[must_use]
pub fn show_time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A moment shown on a page: relative words for people ("3 minutes ago", "yesterday", "in 2
/// hours") with the exact time beside them. Templates show it through the `moment` macro of
/// `templates/partials/time.html`: `<time datetime="{{ iso }}" title="{{ utc }}">{{ ago }}</time>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moment {
    /// The exact time, as [`show_time`] writes it: `2026-11-22 14:05 UTC`.
    pub utc: String,
    /// The exact time for machines (the `datetime` attribute), RFC 3339 in UTC:
    /// `2026-11-22T14:05:09Z`.
    pub iso: String,
    /// The time relative to when the page was made: see [`relative_time`].
    pub ago: String,
}

impl Moment {
    /// `t` (UTC) as seen now.
    #[must_use]
    pub fn of(t: &chrono::NaiveDateTime) -> Self {
        Self::at(t, &chrono::Utc::now().naive_utc())
    }

    /// `t` (UTC) as seen at `now` (UTC).
    #[must_use]
    pub fn at(t: &chrono::NaiveDateTime, now: &chrono::NaiveDateTime) -> Self {
        Self {
            utc: show_time(t),
            iso: t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ago: relative_time(t, now),
        }
    }
}

/// `t` relative to `now` (both UTC), in the words people use, rounded down: "just now", "1
/// minute ago", "5 hours ago" (under a day), "yesterday" (the calendar day before, UTC), "3 days
/// ago", and the
/// date (`2026-11-22`) once more than 30 days away; in the future "in a moment", "in 15
/// minutes", "in 2 hours", "tomorrow", "in 3 days".
#[must_use]
pub fn relative_time(t: &chrono::NaiveDateTime, now: &chrono::NaiveDateTime) -> String {
    let seconds = (*now - *t).num_seconds();
    let days_apart = (now.date() - t.date()).num_days();
    let future = seconds < 0;
    let span = seconds.unsigned_abs();
    let counted = |value: u64, unit: &str| {
        let plural = if value == 1 { "" } else { "s" };
        if future {
            format!("in {value} {unit}{plural}")
        } else {
            format!("{value} {unit}{plural} ago")
        }
    };
    match span {
        0..=59 if future => "in a moment".to_owned(),
        0..=59 => "just now".to_owned(),
        60..=3_599 => counted(span / 60, "minute"),
        3_600..=86_399 => counted(span / 3_600, "hour"),
        _ if days_apart == 1 => "yesterday".to_owned(),
        _ if days_apart == -1 => "tomorrow".to_owned(),
        _ if span <= 30 * 86_400 => counted(days_apart.unsigned_abs().max(2), "day"),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// `message` with its first letter in upper case (service messages are sentence fragments).
#[must_use]
pub fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A duration of `seconds` in words, rounded up to the unit people would say: "30 seconds",
/// "1 minute", "15 minutes", "2 hours", "3 days".
#[must_use]
pub fn human_duration(seconds: u64) -> String {
    let (value, unit) = match seconds {
        0..=59 => (seconds.max(1), "second"),
        60..=3_599 => (seconds.div_ceil(60), "minute"),
        3_600..=86_399 => (seconds.div_ceil(3_600), "hour"),
        _ => (seconds.div_ceil(86_400), "day"),
    };
    if value == 1 {
        format!("1 {unit}")
    } else {
        format!("{value} {unit}s")
    }
}

/// When a limited action may be tried again, for a sentence ending "Try again …": "in 15
/// minutes" (see [`human_duration`]).
#[must_use]
pub fn wait_phrase(seconds: u64) -> String {
    format!("in {}", human_duration(seconds))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

    use super::{capitalized, human_duration, relative_time, wait_phrase, Moment};

    fn noon() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 22)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .expect("a valid time")
    }

    fn ago(seconds: i64) -> String {
        relative_time(&(noon() - TimeDelta::seconds(seconds)), &noon())
    }

    #[test]
    fn times_read_relative_to_now() {
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(59), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(3 * 60 + 59), "3 minutes ago");
        assert_eq!(ago(3_600), "1 hour ago");
        assert_eq!(ago(11 * 3_600), "11 hours ago");
        // Under a day it counts hours; then yesterday is the calendar day before.
        assert_eq!(ago(13 * 3_600), "13 hours ago");
        assert_eq!(ago(23 * 3_600 + 3_599), "23 hours ago");
        assert_eq!(ago(24 * 3_600), "yesterday");
        assert_eq!(ago(36 * 3_600), "yesterday");
        assert_eq!(ago(37 * 3_600), "2 days ago");
        assert_eq!(ago(30 * 86_400), "30 days ago");
        assert_eq!(ago(31 * 86_400), "2026-10-22");
        assert_eq!(ago(-30), "in a moment");
        assert_eq!(ago(-15 * 60), "in 15 minutes");
        assert_eq!(ago(-2 * 3_600), "in 2 hours");
        assert_eq!(ago(-13 * 3_600), "in 13 hours");
        assert_eq!(ago(-30 * 3_600), "tomorrow");
        assert_eq!(ago(-3 * 86_400), "in 3 days");
    }

    #[test]
    fn a_moment_keeps_the_exact_time() {
        let t = noon() - TimeDelta::seconds(125);
        let moment = Moment::at(&t, &noon());
        assert_eq!(moment.utc, "2026-11-22 11:57 UTC");
        assert_eq!(moment.iso, "2026-11-22T11:57:55Z");
        assert_eq!(moment.ago, "2 minutes ago");
    }

    #[test]
    fn messages_start_with_a_capital() {
        assert_eq!(capitalized("the password must"), "The password must");
        assert_eq!(capitalized(""), "");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(0), "1 second");
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(60), "1 minute");
        assert_eq!(human_duration(893), "15 minutes");
        assert_eq!(human_duration(3_600), "1 hour");
        assert_eq!(human_duration(7_201), "3 hours");
        assert_eq!(human_duration(86_400), "1 day");
        assert_eq!(wait_phrase(900), "in 15 minutes");
    }
}

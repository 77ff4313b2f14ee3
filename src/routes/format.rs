//! How pages show things: times, and the pagination links of lists.

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
    use super::{capitalized, human_duration, wait_phrase};

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

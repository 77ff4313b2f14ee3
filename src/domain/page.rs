//! Pagination: what a list asks for ([`PageRequest`]) and what it gets back ([`Page`]).

/// Largest page size any list serves.
pub const MAX_PAGE_SIZE: i64 = 200;

/// A 1-based page number and a page size (items per page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub number: i64,
    /// Items per page, 1..=[`MAX_PAGE_SIZE`].
    pub size: i64,
}

impl PageRequest {
    /// Page `number` (missing or below 1 → 1) of `size` items (clamped to 1..=[`MAX_PAGE_SIZE`]).
    #[must_use]
    pub fn new(number: Option<i64>, size: i64) -> Self {
        Self {
            number: number.unwrap_or(1).clamp(1, i64::MAX / MAX_PAGE_SIZE),
            size: size.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// Rows to skip.
    #[must_use]
    pub fn offset(&self) -> i64 {
        (self.number - 1) * self.size
    }
}

/// One page of a list and the size of the whole list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// 1-based page number.
    pub number: i64,
    /// Items per page.
    pub size: i64,
    /// Items in the whole list.
    pub total: i64,
}

impl<T> Page<T> {
    /// The page of `items` answering `request` out of `total`.
    #[must_use]
    pub fn new(items: Vec<T>, request: PageRequest, total: i64) -> Self {
        Self {
            items,
            number: request.number,
            size: request.size,
            total,
        }
    }

    /// Number of pages (at least 1, so an empty list has one empty page).
    #[must_use]
    pub fn pages(&self) -> i64 {
        ((self.total + self.size - 1) / self.size).max(1)
    }

    /// The same page with every item mapped.
    #[must_use]
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            number: self.number,
            size: self.size,
            total: self.total,
        }
    }
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` escaped (use with
/// `.escape('\\')`), lower-cased for comparison with `lower(column)`.
#[must_use]
pub fn contains_pattern(needle: &str) -> String {
    format!("%{}%", escape_like(&needle.trim().to_lowercase()))
}

/// `text` with the `LIKE` wildcards `%` and `_` and the escape character `\` escaped by `\`.
#[must_use]
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_clamped() {
        assert_eq!(
            PageRequest::new(None, 20),
            PageRequest {
                number: 1,
                size: 20
            }
        );
        assert_eq!(PageRequest::new(Some(-3), 0).offset(), 0);
        assert_eq!(PageRequest::new(Some(3), 10_000).size, MAX_PAGE_SIZE);
        assert_eq!(PageRequest::new(Some(3), 25).offset(), 50);
        assert!(PageRequest::new(Some(i64::MAX), 200).offset() > 0);
    }

    #[test]
    fn pages_round_up() {
        let req = PageRequest::new(Some(1), 10);
        assert_eq!(Page::<()>::new(vec![], req, 0).pages(), 1);
        assert_eq!(Page::<()>::new(vec![], req, 10).pages(), 1);
        assert_eq!(Page::<()>::new(vec![], req, 11).pages(), 2);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern(" Ab%_\\ "), "%ab\\%\\_\\\\%");
    }
}

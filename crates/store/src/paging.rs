//! Paging of list queries: by offset (`Page` × `PageSize`) or by keyset (a page token
//! naming the sort key of the item next to the page), so that following a list's
//! `next_page_uri` neither skips nor repeats items when rows are added or removed between
//! requests. Lists are ordered by `(date_created, sid)`, oldest or newest first.

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};

use crate::{Page, StoreError};

/// Where a list item sits in its list: the columns every list is ordered by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub date_created: i64,
    pub sid: String,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    /// Skip this many items from the start of the list.
    Offset(u64),
    /// The items that follow this key in list order (a next page).
    After(SortKey),
    /// The items that precede this key in list order (a previous page).
    Before(SortKey),
}

/// One page of a list: where it starts and how many items it holds at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub start: PageStart,
    pub size: u32,
}

impl PageRequest {
    /// Page `page` (from 0) of `size` items, by offset.
    pub fn offset(page: u32, size: u32) -> PageRequest {
        PageRequest {
            start: PageStart::Offset(u64::from(page) * u64::from(size)),
            size,
        }
    }
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListOrder {
    OldestFirst,
    NewestFirst,
}

impl ListOrder {
    /// The SQL that follows a list query's `WHERE` conditions for `request`: the keyset
    /// condition (if any), the order and `LIMIT ? OFFSET ?`. A previous page is read in
    /// reverse order (and put back in list order by [`page_of_request`]).
    fn tail(self, start: &PageStart) -> &'static str {
        use ListOrder::*;
        match (self, start) {
            (OldestFirst, PageStart::Offset(_)) => " ORDER BY date_created, sid LIMIT ? OFFSET ?",
            (OldestFirst, PageStart::After(_)) => {
                " AND (date_created, sid) > (?, ?) ORDER BY date_created, sid LIMIT ? OFFSET ?"
            }
            (OldestFirst, PageStart::Before(_)) => {
                " AND (date_created, sid) < (?, ?)
                 ORDER BY date_created DESC, sid DESC LIMIT ? OFFSET ?"
            }
            (NewestFirst, PageStart::Offset(_)) => {
                " ORDER BY date_created DESC, sid DESC LIMIT ? OFFSET ?"
            }
            (NewestFirst, PageStart::After(_)) => {
                " AND (date_created, sid) < (?, ?)
                 ORDER BY date_created DESC, sid DESC LIMIT ? OFFSET ?"
            }
            (NewestFirst, PageStart::Before(_)) => {
                " AND (date_created, sid) > (?, ?) ORDER BY date_created, sid LIMIT ? OFFSET ?"
            }
        }
    }
}

/// A list query: `select_where` (a `SELECT … WHERE …` of this crate, ending in its
/// conditions) followed by the paging tail for `request`.
pub(crate) fn list_sql(
    select_where: &'static str,
    order: ListOrder,
    request: &PageRequest,
) -> sqlx::AssertSqlSafe<String> {
    // Both parts are constants of this crate; every value is a bind parameter.
    sqlx::AssertSqlSafe(format!("{select_where}{}", order.tail(&request.start)))
}

/// Binds the paging parameters of [`list_sql`]'s tail (after the query's own parameters).
/// One more item than the page holds is read, to tell whether another page follows.
pub(crate) fn bind_page<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    request: &PageRequest,
) -> Query<'q, Sqlite, SqliteArguments> {
    let limit = i64::from(request.size) + 1;
    match &request.start {
        PageStart::Offset(offset) => query
            .bind(limit)
            .bind(i64::try_from(*offset).unwrap_or(i64::MAX)),
        PageStart::After(key) | PageStart::Before(key) => query
            .bind(key.date_created)
            .bind(key.sid.clone())
            .bind(limit)
            .bind(0_i64),
    }
}

/// The page read by a [`list_sql`] query, in list order. `has_more` says whether more
/// items follow it in the direction it was read: after it for offsets and next pages,
/// before it for previous pages.
pub(crate) fn page_of_request<T>(
    rows: Vec<SqliteRow>,
    request: &PageRequest,
    convert: fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut page = crate::page_of(rows, request.size, convert)?;
    if matches!(request.start, PageStart::Before(_)) {
        page.items.reverse();
    }
    Ok(page)
}

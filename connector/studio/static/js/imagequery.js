// The image filters of the grid, as they appear in the page address and as the API takes them.
// The labeling page walks the same filtered list, so both read them from here.
export const PAGE_SIZE = 60;

export const STATES = [
  ["", "All images"],
  ["unlabeled", "Unlabeled"],
  ["labeled", "Labeled"],
  ["suggested", "Has suggestions"],
];

export const SORTS = [
  ["", "Oldest first"],
  ["-id", "Newest first"],
  ["uncertainty", "Least sure suggestions first"],
];

// Address query -> the filters kept in links (dataset, label, state, sort).
export function filtersOf(query) {
  const out = {};
  for (const k of ["dataset", "label", "state", "sort"]) if (query[k]) out[k] = query[k];
  return out;
}

// Filters -> ListImages query parameters (only those set: the API rejects unknown ones).
export function apiQuery(filters, page, pageSize = PAGE_SIZE) {
  const q = { page, pageSize };
  if (filters.label) q.label = filters.label;
  if (filters.state === "unlabeled") q.tagged = false;
  if (filters.state === "labeled") q.tagged = true;
  if (filters.state === "suggested") q.hasSuggestions = true;
  if (filters.sort) q.sort = filters.sort;
  return q;
}

export function countBoxes(image) {
  let approved = 0;
  let suggested = 0;
  for (const r of image.regions || []) {
    if (r.approved) approved += 1;
    else suggested += 1;
  }
  return { approved, suggested };
}

"""The lifecycle rules, free of HTTP: each module owns one resource."""

"""The Power Platform custom connector: Swagger 2.0 from the served spec, the connector package, flows."""

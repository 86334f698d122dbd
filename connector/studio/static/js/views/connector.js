// The Power Platform custom connector: download the package and the steps to import it.
import { h } from "../dom.js";
import { pageHeader, card } from "../shell.js";

export async function connectorView(el) {
  const host = location.host;
  el.append(h("div", { class: "page" },
    pageHeader("Connector", { subtitle: "Call your published models from Power Automate, Power Apps and Logic Apps." }),
    h("div", { class: "columns" },
      card("Download",
        h("p", "The package holds the API definition (with this server as its host), the connection settings (an API key), an icon and a readme."),
        h("p", h("a", { class: "btn primary", id: "connector-download", href: "/api/v1/connector/package", download: "odconnect-connector.zip" }, "Download the connector package")),
        h("p", { class: "hint" }, "Server: ", h("code", host), ". Flows must reach this address; behind a proxy or tunnel set server.public_url.")),
      card("Import it",
        h("ol", { class: "steps" },
          h("li", "Unzip the package."),
          h("li", "In Power Automate (or Power Apps) open ", h("strong", "Data › Custom connectors"), ", then ", h("strong", "New custom connector › Import an OpenAPI file"), ", and pick ", h("code", "apiDefinition.swagger.json"), "."),
          h("li", "Check the host on the General tab, then ", h("strong", "Create connector"), "."),
          h("li", "Create a connection: paste the same API key you signed in with."),
          h("li", "In a flow, add the action ", h("strong", "Detect and count objects in an image"), " and pick your model."),
          h("li", "With the Power Platform CLI instead: ", h("code", "paconn create --api-def apiDefinition.swagger.json --api-prop apiProperties.json --icon icon.png"), ".")),
        h("p", { class: "hint" }, "The readme in the package lists every operation and the known limits.")))));
}

import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";
const [, , path] = process.argv;
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"));
const severities = ["error", "warning", "information", "hint"];
const out = {
  valid: document !== undefined,
  diagnostics: diagnostics.map((d) => ({
    severity: severities[d.severity] ?? String(d.severity), code: d.code,
    message: d.message, path: d.path.join("."),
  })),
};
if (document) {
  out.version = document.version();
  out.channels = document.channels().all().map((c) => c.address());
  out.messages = document.components().messages().all().map((m) => m.id());
  out.operations = document.operations().all().map((o) => o.id());
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.valid ? 0 : 1);

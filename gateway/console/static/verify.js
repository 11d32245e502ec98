// Verifies one audit entry in this browser, trusting nothing the gateway computed.
//
// The gateway hands over evidence: the entry's bytes, the audit path, the
// newest signed checkpoint and the log's key. Here they are checked with
// WebCrypto alone: leaf = SHA-256(0x00 || bytes), the root rebuilt from the
// path (RFC 9162 §2.1.3.2), the checkpoint note parsed as c2sp.org/
// tlog-checkpoint and its Ed25519 signature checked with the log key this
// browser pinned the first time it verified (trust on first use). A key that
// differs from the pinned one fails loudly: a gateway that swapped its key
// could sign anything.
"use strict";

(() => {
  const PIN = "weightgate.console.audit-log-key";
  const DASH = "\u2014";
  const button = document.getElementById("verify-button");
  const checkList = document.getElementById("checks");
  const verdict = document.getElementById("verdict");
  const pinnedShown = document.getElementById("pinned-key");
  const forget = document.getElementById("forget-key");
  const utf8 = new TextEncoder();

  // Bytes ---------------------------------------------------------------------

  function fromBase64(text) {
    if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      throw new Error("not base64");
    }
    const binary = atob(text);
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function equal(a, b) {
    return a.length === b.length && a.every((byte, i) => byte === b[i]);
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  async function fingerprint(keyBase64) {
    return "SHA256:" + hex(await sha256(fromBase64(keyBase64)));
  }

  // The Merkle tree (RFC 9162 §2.1.3.2) -----------------------------------------

  async function rootFromPath(index, size, leaf, path) {
    if (index >= size) throw new Error(`index ${index} is not in a tree of size ${size}`);
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of path) {
      if (p.length !== 32) throw new Error("a path hash is not 32 bytes");
      if (sn === 0n) throw new Error("the path is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the path is shorter than the tree is deep");
    return r;
  }

  // Checkpoints (c2sp.org/tlog-checkpoint, c2sp.org/signed-note) ---------------

  function parseCheckpoint(note) {
    if (typeof note !== "string") throw new Error("no checkpoint note");
    if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new Error("the note holds control characters");
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("not a signed note: no blank line before the signatures");
    const body = note.slice(0, split + 1);
    const lines = body.split("\n");
    if (lines.length !== 4 || lines[3] !== "") throw new Error("the body is not origin, size and root");
    const [origin, sizeText, rootText] = lines;
    if (!/^(0|[1-9][0-9]{0,18})$/.test(sizeText)) throw new Error("the size is malformed");
    const root = fromBase64(rootText);
    if (root.length !== 32) throw new Error("the root is not 32 bytes");
    const signatures = note.slice(split + 2).split("\n").filter((line) => line !== "");
    return { body, origin, size: BigInt(sizeText), root, signatures };
  }

  async function keyId(name, publicKey) {
    const digest = await sha256(concat(utf8.encode(name + "\n"), Uint8Array.of(1), publicKey));
    return digest.slice(0, 4);
  }

  function signatureBy(note, name, id) {
    const prefix = `${DASH} ${name} `;
    for (const line of note.signatures) {
      if (!line.startsWith(prefix)) continue;
      let blob;
      try {
        blob = fromBase64(line.slice(prefix.length));
      } catch {
        continue;
      }
      if (blob.length === 4 + 64 && equal(blob.slice(0, 4), id)) return blob.slice(4);
    }
    return null;
  }

  async function ed25519Verifies(publicKey, signature, message) {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  // The pinned key ------------------------------------------------------------

  function readPin() {
    try {
      const pin = JSON.parse(localStorage.getItem(PIN) || "null");
      return pin && typeof pin.key === "string" && typeof pin.origin === "string" ? pin : null;
    } catch {
      return null;
    }
  }

  async function showPin() {
    const pin = readPin();
    pinnedShown.textContent = pin ? `${await fingerprint(pin.key)} (log ${pin.origin})` : "none yet";
  }

  // The checks ----------------------------------------------------------------

  function report(name, ok, why) {
    const item = document.createElement("li");
    item.className = ok ? "pass" : "fail";
    item.dataset.check = name;
    item.dataset.result = ok ? "pass" : "fail";
    const outcome = document.createElement("span");
    outcome.className = "outcome";
    outcome.textContent = ok ? "pass" : "FAIL";
    const text = document.createElement("span");
    text.className = "what";
    text.textContent = name;
    const detail = document.createElement("span");
    detail.className = "why";
    detail.textContent = why ? ` (${why})` : "";
    item.append(outcome, text, detail);
    checkList.append(item);
    return ok;
  }

  function conclude(result, text) {
    verdict.dataset.result = result;
    verdict.textContent = text;
  }

  async function verify(evidence, index) {
    const results = [];
    const check = async (name, run) => {
      let ok = false;
      let why = "";
      try {
        [ok, why] = await run();
      } catch (error) {
        why = error instanceof Error ? error.message : String(error);
      }
      results.push(report(name, ok, why));
      return ok;
    };

    // Trust on first use: the first log key seen is kept; afterwards only it counts.
    let pin = readPin();
    await check("Log key is the one pinned in this browser", async () => {
      const served = await fingerprint(evidence.log_key);
      if (pin === null) {
        pin = { origin: String(evidence.origin), key: evidence.log_key };
        localStorage.setItem(PIN, JSON.stringify(pin));
        await showPin();
        return [true, `first use: pinned ${served}; compare it with the key you know`];
      }
      if (pin.key !== evidence.log_key) {
        return [false, `log key changed: pinned ${await fingerprint(pin.key)}, served ${served}`];
      }
      if (pin.origin !== evidence.origin) {
        return [false, `log origin changed: pinned ${pin.origin}, served ${evidence.origin}`];
      }
      return [true, served];
    });
    const publicKey = fromBase64(pin.key);

    const entry = fromBase64(evidence.entry);
    const leaf = await leafHash(entry);
    await check("Entry bytes hash to the leaf hash the gateway states", async () => {
      const computed = hex(leaf);
      return [computed === evidence.leaf_hash, `SHA-256(0x00 || entry) = ${computed}`];
    });

    await check(`Entry names index ${index} and the pinned log`, async () => {
      const parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(entry));
      const ok = String(parsed.index) === String(index) && parsed.origin === pin.origin;
      return [ok, `index ${parsed.index}, origin ${parsed.origin}`];
    });

    let note = null;
    await check("Checkpoint is a well-formed note of the pinned log", async () => {
      note = parseCheckpoint(evidence.checkpoint);
      return [note.origin === pin.origin, `origin ${note.origin}, size ${note.size}`];
    });

    let signature = null;
    await check("Checkpoint carries a signature with the pinned key's id", async () => {
      if (note === null) throw new Error("no checkpoint to read");
      const id = await keyId(pin.origin, publicKey);
      signature = signatureBy(note, pin.origin, id);
      return [signature !== null, `key id ${hex(id)} = SHA-256(name || \\n || 0x01 || key)[:4]`];
    });

    await check("Checkpoint signature verifies (Ed25519, pinned key)", async () => {
      if (note === null || signature === null) throw new Error("no signature to check");
      return [await ed25519Verifies(publicKey, signature, utf8.encode(note.body)), "over the note's body"];
    });

    await check("Proof is for the checkpoint's tree size", async () => {
      if (note === null) throw new Error("no checkpoint to read");
      const size = BigInt(evidence.size);
      return [size === note.size && index < size, `proof size ${size}, checkpoint size ${note.size}`];
    });

    await check("Audit path leads from this entry's leaf to the checkpoint's root", async () => {
      if (note === null) throw new Error("no checkpoint to read");
      if (!Array.isArray(evidence.proof)) throw new Error("no audit path");
      const path = evidence.proof.map(fromBase64);
      const root = await rootFromPath(index, note.size, leaf, path);
      return [equal(root, note.root), `${path.length} ${path.length === 1 ? "hash" : "hashes"}; recomputed root ${hex(root)}`];
    });

    const failed = results.filter((ok) => !ok).length;
    if (failed === 0) {
      conclude("verified", `Verified: entry ${index} is in the log of size ${note.size}, signed by the pinned key.`);
    } else {
      conclude("failed", `FAILED: ${failed} of ${results.length} checks did not hold. Do not trust this entry.`);
    }
  }

  async function run() {
    button.disabled = true;
    checkList.replaceChildren();
    conclude("checking", "Checking…");
    try {
      if (!window.crypto || !crypto.subtle) {
        throw new Error("WebCrypto is unavailable: open the console over https (or on localhost)");
      }
      const index = BigInt(button.dataset.index);
      const response = await fetch(button.dataset.evidence, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("content-type") || "";
      if (!type.startsWith("application/json")) {
        throw new Error(`the gateway answered ${response.status} without evidence (signed out?)`);
      }
      const evidence = await response.json();
      if (evidence.status === "not_yet_covered") {
        conclude(
          "not-covered",
          `Not yet covered: no signed checkpoint includes entry ${index} yet. ` +
            `Try again in ${evidence.retry_after} s.`,
        );
        return;
      }
      if (evidence.status !== "covered") throw new Error(evidence.message || `status ${evidence.status}`);
      if (String(evidence.index) !== String(index)) throw new Error("the evidence is for another entry");
      await verify(evidence, index);
    } catch (error) {
      report("Evidence could be read", false, error instanceof Error ? error.message : String(error));
      conclude("failed", "FAILED: the entry could not be verified.");
    } finally {
      button.disabled = false;
    }
  }

  // The pure checks, for the tests that hold them to the Python implementation.
  window.weightgateAudit = Object.freeze({ leafHash, rootFromPath, parseCheckpoint, keyId });
  if (!button) return;
  button.addEventListener("click", run);
  forget.addEventListener("click", () => {
    localStorage.removeItem(PIN);
    showPin();
  });
  showPin();
})();

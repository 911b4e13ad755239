// mediavault player: transcript beside the media, word highlight, click-to-seek, find, editing.
// Plain JavaScript, no build step. Long transcripts: statements are rendered in blocks as they
// come near the viewport, and the current word is found by binary search over start times.
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("player-config").textContent);
  const media = document.getElementById("media");
  const box = document.getElementById("transcript");
  const messageEl = document.getElementById("message");
  const speakersEl = document.getElementById("speakers");
  const followButton = document.getElementById("follow");
  const findInput = document.getElementById("find");
  const findCount = document.getElementById("find-count");
  const BLOCK = 50;
  const EPSILON = 0.001;

  let etag = cfg.etag;
  let statements = [];
  let names = {};
  let starts = new Float64Array(0), ends = new Float64Array(0), reach = new Float64Array(0);
  let wordStatement = new Int32Array(0), firstWord = new Int32Array(0);
  // word elements are kept per statement (timed words in order), so a corrected statement is
  // re-rendered alone: global word indices after it shift, elements of other statements do not
  let wordsOf = [], statementEls = [], blockEls = [], rendered = [];
  let current = -1, currentStatement = -1, pinned = -1, follow = true, observer = null;
  let statementStarts = new Float64Array(0), statementReach = new Float64Array(0);
  let findTerms = [], findMatches = [], findPos = -1, marked = new Set();
  const perf = (window.mvPerf = { started: performance.now() });

  // -- helpers ---------------------------------------------------------------------------------
  const fold = (s) => s.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
  const clock = (t) => {
    const s = Math.max(0, Math.floor(t || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
  };
  // a speaker's colour is its place among the media's sorted labels: stable across reloads and
  // renames, and distinct for up to eight speakers
  const labels = (cfg.speakers || []).map((s) => s.label).sort();
  const colour = (label) => {
    const place = labels.indexOf(label);
    if (place >= 0) return place % 8;
    let h = 0;
    for (const c of label || "") h = (h * 31 + c.codePointAt(0)) >>> 0;
    return h % 8;
  };
  const csrf = () => (document.cookie.match(/(?:^|;\s*)mv_csrf=([^;]+)/) || [])[1] || "";
  const say = (text, bad = false) => {
    messageEl.textContent = text;
    messageEl.classList.toggle("bad", bad);
  };
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  async function api(method, path, body) {
    const headers = { "X-CSRF-Token": decodeURIComponent(csrf()) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["If-Match"] = etag;
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return { response, data };
  }

  // -- transcript model ------------------------------------------------------------------------
  function index() {
    let n = 0;
    for (const s of statements) n += (s.words || []).filter((w) => w.start !== null && w.start !== undefined).length;
    starts = new Float64Array(n); ends = new Float64Array(n); reach = new Float64Array(n);
    wordStatement = new Int32Array(n); firstWord = new Int32Array(statements.length).fill(-1);
    let i = 0, maxStart = 0;
    statements.forEach((s, si) => {
      s.timed = [];
      for (const w of s.words || []) {
        if (w.start === null || w.start === undefined) { s.timed.push(-1); continue; }
        if (firstWord[si] < 0) firstWord[si] = i;
        starts[i] = w.start;
        ends[i] = w.end ?? w.start;
        maxStart = Math.max(maxStart, w.start);
        reach[i] = maxStart; // non-decreasing even when diarized statements overlap
        wordStatement[i] = si;
        s.timed.push(i - firstWord[si]);
        i += 1;
      }
    });
    statementStarts = new Float64Array(statements.length);
    statementReach = new Float64Array(statements.length);
    let latest = 0, furthest = 0;
    statements.forEach((s, si) => {
      latest = Math.max(latest, s.start);
      furthest = Math.max(furthest, s.end);
      statementStarts[si] = latest;
      statementReach[si] = furthest;
    });
  }

  function elementOf(index) {
    if (index < 0 || index >= wordStatement.length) return undefined;
    const si = wordStatement[index];
    const spans = wordsOf[si];
    return spans ? spans[index - firstWord[si]] : undefined;
  }

  function wordAt(t) {
    let lo = 0, hi = reach.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (reach[mid] <= t + EPSILON) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    // several words may share a start: the first of them that has not ended yet
    while (found > 0 && starts[found - 1] === starts[found] && ends[found - 1] > t) found -= 1;
    return found;
  }

  function statementAt(t) {
    let lo = 0, hi = statementStarts.length - 1, found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (statementStarts[mid] <= t + EPSILON) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  // -- rendering -------------------------------------------------------------------------------
  function layout() {
    if (observer) observer.disconnect();
    box.textContent = "";
    blockEls = []; rendered = []; statementEls = new Array(statements.length); wordsOf = new Array(statements.length);
    if (!statements.length) {
      box.append(el("p", {}, "This run has no statements."));
      return;
    }
    observer = new IntersectionObserver((entries) => {
      for (const entry of entries) if (entry.isIntersecting) renderBlock(Number(entry.target.dataset.block));
    }, { root: box, rootMargin: "1200px 0px" });
    for (let b = 0; b * BLOCK < statements.length; b++) {
      const block = el("div", { class: "block", "data-block": b });
      let estimate = 0;
      for (const s of statements.slice(b * BLOCK, (b + 1) * BLOCK)) estimate += 34 + 22 * Math.ceil((s.text.length + 1) / 80);
      block.style.minHeight = `${estimate}px`;
      blockEls.push(block); rendered.push(false);
      box.append(block);
      observer.observe(block);
    }
  }

  function renderStatement(si) {
    const s = statements[si];
    const node = el("div", { class: "stmt", id: `stmt-${si}`, "data-i": si });
    const head = el("div", { class: "stmt-head" });
    head.append(el("span", { class: `spk c${colour(s.speaker)}`, "data-label": s.speaker || "" }, names[s.speaker] || s.speaker || ""));
    head.append(el("button", { type: "button", class: "ts", "data-i": si, "aria-label": `Play from ${clock(s.start)}` }, clock(s.start)));
    if (s.edited) head.append(el("span", { class: "edited-flag" }, "corrected"));
    if (cfg.can_edit) head.append(el("button", { type: "button", class: "edit-stmt", "data-i": si, "aria-label": `Correct the statement at ${clock(s.start)}` }, "Edit"));
    node.append(head);
    const text = el("p", { class: "text" });
    const timedSpans = [];
    wordsOf[si] = timedSpans;
    if (s.words && s.words.length) {
      s.words.forEach((w, k) => {
        const local = s.timed[k];
        const span = el("span", local >= 0 ? { class: "w", "data-k": local } : { class: "w untimed" }, w.word);
        if (local >= 0) timedSpans.push(span);
        text.append(span, " ");
      });
    } else {
      text.textContent = s.text;
    }
    node.append(text);
    statementEls[si] = node;
    return node;
  }

  function renderBlock(b) {
    if (rendered[b] || !blockEls[b]) return;
    const fragment = document.createDocumentFragment();
    const last = Math.min(statements.length, (b + 1) * BLOCK);
    for (let si = b * BLOCK; si < last; si++) fragment.append(renderStatement(si));
    const block = blockEls[b];
    block.textContent = "";
    block.append(fragment);
    block.style.minHeight = "";
    rendered[b] = true;
    if (current >= 0 && elementOf(current)) elementOf(current).classList.add("current");
    if (currentStatement >= 0 && statementEls[currentStatement]) statementEls[currentStatement].classList.add("playing");
    markFindHits(b);
    if (findPos >= 0 && statementEls[findMatches[findPos]]) statementEls[findMatches[findPos]].classList.add("find-current");
  }

  function reveal(node, force = false) {
    if (!node) return;
    const boxRect = box.getBoundingClientRect(), rect = node.getBoundingClientRect();
    const margin = boxRect.height * 0.2;
    if (force || rect.top < boxRect.top + margin || rect.bottom > boxRect.bottom - margin) {
      box.scrollTop += rect.top - boxRect.top - boxRect.height / 3;
    }
  }

  function showStatement(si, force = true) {
    renderBlock(Math.floor(si / BLOCK));
    reveal(statementEls[si], force);
  }

  // -- playback --------------------------------------------------------------------------------
  function setCurrent(index) {
    if (index === current) return;
    if (current >= 0 && elementOf(current)) elementOf(current).classList.remove("current");
    current = index;
    if (index < 0) return;
    if (!elementOf(index) && follow) renderBlock(Math.floor(wordStatement[index] / BLOCK));
    const node = elementOf(index);
    if (node) {
      node.classList.add("current");
      if (follow) reveal(node);
    }
  }

  function setCurrentStatement(si) {
    if (si === currentStatement) return;
    if (currentStatement >= 0 && statementEls[currentStatement]) statementEls[currentStatement].classList.remove("playing");
    currentStatement = si;
    if (si < 0) return;
    if (!statementEls[si] && follow) renderBlock(Math.floor(si / BLOCK));
    const node = statementEls[si];
    if (node) {
      node.classList.add("playing");
      if (follow && !starts.length) reveal(node);
    }
  }

  function highlightAt(t) {
    if (statements.length) {
      const si = statementAt(t);
      setCurrentStatement(t + EPSILON >= statements[si].start && t <= statementReach[si] + 0.5 ? si : -1);
    }
    if (pinned >= 0 && t >= starts[pinned] - EPSILON && t < Math.max(ends[pinned], starts[pinned] + 0.05)) {
      setCurrent(pinned);
    } else {
      pinned = -1;
      setCurrent(wordAt(t));
    }
  }

  function seek(t, word = -1) {
    if (!media) return;
    pinned = word;
    media.currentTime = t;
    follow = true;
    followButton.hidden = true;
    highlightAt(t);
  }

  function loop() {
    if (!media || media.paused) return;
    highlightAt(media.currentTime);
    requestAnimationFrame(loop);
  }

  function stopFollowing() {
    if (!media || media.paused) return;
    follow = false;
    followButton.hidden = false;
  }

  // -- find in transcript ----------------------------------------------------------------------
  function markFindHits(b) {
    if (!findTerms.length) return;
    const last = Math.min(statements.length, (b + 1) * BLOCK);
    for (let si = b * BLOCK; si < last; si++) {
      const node = statementEls[si];
      if (!node) continue;
      for (const span of node.querySelectorAll(".w")) {
        const word = fold(span.textContent);
        if (findTerms.some((term) => word.includes(term))) { span.classList.add("find-hit"); marked.add(span); }
      }
    }
  }

  function find(term, near = null, jump = false) {
    for (const span of marked) span.classList.remove("find-hit");
    marked = new Set();
    if (findPos >= 0 && statementEls[findMatches[findPos]]) statementEls[findMatches[findPos]].classList.remove("find-current");
    const phrase = fold(term.replace(/"/g, " ").trim());
    findTerms = phrase.split(/\s+/).filter(Boolean);
    findMatches = [];
    findPos = -1;
    if (findTerms.length) {
      statements.forEach((s, si) => {
        const text = fold(s.text);
        if (text.includes(phrase) || findTerms.every((t) => text.includes(t))) findMatches.push(si);
      });
      rendered.forEach((r, b) => r && markFindHits(b));
    }
    if (!findMatches.length) {
      findCount.textContent = findTerms.length ? "no matches" : "";
      return;
    }
    if (near === null) go(0);
    else {
      const after = findMatches.findIndex((si) => si >= near);
      if (jump) { go(after < 0 ? findMatches.length - 1 : after); return; }
      findPos = after < 0 ? findMatches.length - 1 : after;
      findCount.textContent = `${findPos + 1} of ${findMatches.length}`;
      if (statementEls[findMatches[findPos]]) statementEls[findMatches[findPos]].classList.add("find-current");
    }
  }

  function go(position) {
    if (!findMatches.length) return;
    if (findPos >= 0 && statementEls[findMatches[findPos]]) statementEls[findMatches[findPos]].classList.remove("find-current");
    findPos = (position + findMatches.length) % findMatches.length;
    const si = findMatches[findPos];
    follow = false;
    if (media && !media.paused) followButton.hidden = false;
    showStatement(si);
    statementEls[si].classList.add("find-current");
    findCount.textContent = `${findPos + 1} of ${findMatches.length}`;
  }

  // -- editing ---------------------------------------------------------------------------------
  function theirs(kind, payload, data) {
    const applied = (data && data.edits) || {};
    if (kind === "rename-speaker") {
      const name = (applied.speaker_names || {})[payload.speaker] || payload.speaker;
      return `Their name for ${payload.speaker}: “${name}”.`;
    }
    if (kind === "correct-text") {
      const fixed = (applied.texts || []).find((t) => t.run_id === payload.run_id && t.seq === payload.seq);
      const original = statements.find((s) => s.seq === payload.seq);
      return `Their text: “${fixed ? fixed.text : original ? original.text : "?"}”.`;
    }
    return `Their details: title “${data.title || ""}”, tags ${(data.tags || []).join(", ") || "none"}, language ${data.language || "–"}.`;
  }

  async function conflict(kind, payload, mine) {
    const { data } = await api("GET", `/api/v1/media/${cfg.media_id}`);
    const now = data ? `it is now version ${data.manifest_version}. ${theirs(kind, payload, data)}` : "it has changed.";
    document.getElementById("conflict-text").textContent = `You were editing version ${cfg.version}; ${now}`;
    document.getElementById("conflict-mine").textContent = mine;
    const dialog = document.getElementById("conflict");
    dialog.hidden = false;
    document.getElementById("conflict-reload").focus();
  }

  async function edit(kind, payload, mine) {
    const { response, data } = await api("POST", `/api/v1/media/${cfg.media_id}/edits`, { kind, payload });
    if (response.status === 412) { await conflict(kind, payload, mine); return false; }
    if (!response.ok) {
      const detail = data && data.detail && data.detail.field ? ` (${data.detail.field})` : "";
      say(`Not saved: ${(data && data.error) || response.statusText}${detail}`, true);
      return false;
    }
    etag = data.etag;
    cfg.version = data.manifest_version;
    document.getElementById("media-version").textContent = data.manifest_version;
    return true;
  }

  function renderSpeakers() {
    speakersEl.textContent = "";
    // a transcript without diarization has no speakers: no empty heading
    speakersEl.closest("section").hidden = Object.keys(names).length === 0;
    for (const label of Object.keys(names).sort()) {
      const item = el("li", { "data-label": label });
      item.append(el("span", { class: `spk c${colour(label)}` }, names[label]));
      if (names[label] !== label) item.append(el("span", { class: "label" }, label));
      if (cfg.can_edit) {
        const button = el("button", { type: "button", class: "rename", "aria-label": `Rename ${names[label]}` }, "Rename");
        button.addEventListener("click", () => renameInline(item, label));
        item.append(button);
      }
      speakersEl.append(item);
    }
  }

  function renameInline(item, label) {
    item.textContent = "";
    const input = el("input", { value: names[label], maxlength: 200, "aria-label": `New name for ${label}` });
    const save = el("button", { type: "submit" }, "Save");
    const cancel = el("button", { type: "button" }, "Cancel");
    const form = el("form", { class: "rename-form" });
    form.append(input, save, cancel);
    item.append(form);
    input.focus();
    input.select();
    cancel.addEventListener("click", renderSpeakers);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name || name === names[label]) { renderSpeakers(); return; }
      save.disabled = true;
      if (await edit("rename-speaker", { speaker: label, display_name: name }, `${label} → ${name}`)) {
        names[label] = name;
        for (const s of statements) if (s.speaker === label) s.speaker_name = name;
        for (const node of box.querySelectorAll(".spk")) if (node.dataset.label === label) node.textContent = name;
        renderSpeakers();
        say(`Renamed ${label} to ${name}.`);
      } else {
        save.disabled = false;
      }
    });
  }

  function editStatement(si) {
    const node = statementEls[si];
    if (!node || node.querySelector("textarea")) return;
    const s = statements[si];
    const text = node.querySelector(".text");
    const form = el("form", { class: "stmt-edit" });
    const area = el("textarea", { rows: Math.min(8, Math.ceil(s.text.length / 70) + 1), "aria-label": `Corrected text at ${clock(s.start)}` });
    area.value = s.text;
    const save = el("button", { type: "submit" }, "Save");
    const cancel = el("button", { type: "button" }, "Cancel");
    form.append(area, save, cancel);
    text.replaceWith(form);
    area.focus();
    cancel.addEventListener("click", () => form.replaceWith(text));
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") form.replaceWith(text);
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const corrected = area.value.replace(/\s+/g, " ").trim();
      if (!corrected || corrected === s.text) { form.replaceWith(text); return; }
      save.disabled = true;
      if (await edit("correct-text", { run_id: cfg.run_id, seq: s.seq, text: corrected }, corrected)) {
        await reloadStatement(si);
        say("Correction saved.");
      } else {
        save.disabled = false;
      }
    });
  }

  async function reloadStatement(si) {
    const { response, data } = await api("GET", `/api/v1/media/${cfg.media_id}/transcript?run=${cfg.run_id}&seq=${statements[si].seq}`);
    if (!response.ok) { say("Saved, but the transcript could not be reloaded; reload the page.", true); return; }
    const fresh = data.statements.find((s) => s.seq === statements[si].seq);
    if (current >= 0 && elementOf(current)) elementOf(current).classList.remove("current");
    if (currentStatement >= 0 && statementEls[currentStatement]) statementEls[currentStatement].classList.remove("playing");
    current = -1;
    currentStatement = -1;
    pinned = -1;
    if (fresh) statements[si] = fresh;
    index();
    const old = statementEls[si];
    if (old) old.replaceWith(renderStatement(si));
    if (media) highlightAt(media.currentTime);
    if (findTerms.length) find(findInput.value, si);
  }

  function showDetails(data, form) {
    document.getElementById("media-title").textContent = data.title || "Untitled";
    document.title = `${data.title || "Untitled"} · mediavault`;
    document.getElementById("media-language").textContent = data.language || "–";
    const tags = document.getElementById("media-tags");
    tags.textContent = "";
    for (const tag of data.tags || []) tags.append(el("span", { class: "tag" }, tag));
    let description = document.getElementById("media-description");
    if (!description && data.description) {
      description = el("p", { id: "media-description", class: "description" });
      document.querySelector(".player-head").append(description);
    }
    if (description) description.textContent = data.description || "";
    const values = { title: data.title || "", description: data.description || "", tags: (data.tags || []).join(", "), language: data.language || "" };
    for (const [name, value] of Object.entries(values)) {
      form.elements[name].value = value;
      form.elements[name].defaultValue = value;
    }
  }

  async function metadata(form) {
    const values = Object.fromEntries(new FormData(form));
    // An emptied field that had a value is sent as null, which clears it; an empty one stays unsent.
    const field = (name) => values[name].trim() || (form.elements[name].defaultValue.trim() ? null : undefined);
    const payload = {
      title: field("title"),
      description: field("description"),
      tags: values.tags.split(",").map((t) => t.trim()).filter(Boolean),
      language: field("language"),
    };
    const cleared = ["title", "description", "language"].filter((k) => payload[k] === null);
    if (await edit("fix-metadata", payload, JSON.stringify(payload))) {
      const { data } = await api("GET", `/api/v1/media/${cfg.media_id}`);
      if (data) showDetails(data, form);
      say(cleared.length ? `Details saved; cleared: ${cleared.join(", ")}.` : "Details saved.");
    }
  }

  // -- restore ---------------------------------------------------------------------------------
  async function restore(button) {
    const state = document.getElementById("restore-state");
    button.disabled = true;
    const { response, data } = await api("POST", `/api/v1/media/${cfg.media_id}/restore`);
    if (!response.ok) {
      state.textContent = `Restore not started: ${(data && data.error) || response.statusText}`;
      button.disabled = false;
      return;
    }
    const job = data.flow_run_name || data.job_id;
    state.textContent = `Restore requested${job ? ` (${data.runner === "prefect" ? "flow run" : "job"} ${String(job).slice(0, 24)})` : ""}. Waiting for the media to come back… `;
    if (data.flow_run_url) state.append(el("a", { href: data.flow_run_url }, "Follow it in Prefect"));
    let wait = 1000, failures = 0;
    const poll = async () => {
      if (document.hidden) { setTimeout(poll, wait); return; }
      let answer = null;
      try { answer = await api("GET", `/api/v1/media/${cfg.media_id}`); } catch (_) { answer = null; }
      if (answer && answer.response.ok && answer.data.tier === "hot") {
        state.textContent = "Restored. ";
        state.append(el("a", { href: location.href }, "Reload to play"));
        document.getElementById("media-tier").textContent = "hot";
        return;
      }
      if (answer && answer.response.status >= 400 && answer.response.status < 500) {
        state.textContent = `Stopped checking: ${(answer.data && answer.data.error) || answer.response.statusText}. Reload the page to see the state.`;
        return;
      }
      failures = answer && answer.response.ok ? 0 : failures + 1;
      if (failures >= 10) { state.textContent = "Stopped checking: the server does not answer. Reload the page later."; return; }
      wait = Math.min(60000, wait * 1.5);
      setTimeout(poll, wait);
    };
    setTimeout(poll, wait);
  }

  // -- wiring ----------------------------------------------------------------------------------
  box.addEventListener("click", (event) => {
    const target = event.target;
    if (target.classList.contains("w") && target.dataset.k !== undefined) {
      const si = Number(target.closest(".stmt").dataset.i);
      const i = firstWord[si] + Number(target.dataset.k);
      seek(starts[i], i);
    } else if (target.classList.contains("ts")) {
      const si = Number(target.dataset.i);
      const w = firstWord[si];
      seek(w >= 0 ? starts[w] : statements[si].start, w);
    } else if (target.classList.contains("edit-stmt")) {
      editStatement(Number(target.dataset.i));
    }
  });
  for (const kind of ["wheel", "touchmove"]) box.addEventListener(kind, stopFollowing, { passive: true });
  box.addEventListener("keydown", (event) => {
    if (["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End"].includes(event.key)) stopFollowing();
  });
  box.addEventListener("pointerdown", (event) => { if (event.target === box) stopFollowing(); });
  followButton.addEventListener("click", () => {
    follow = true;
    followButton.hidden = true;
    const node = elementOf(current);
    if (node) reveal(node, true);
  });

  let findTimer = null;
  findInput.addEventListener("input", () => {
    clearTimeout(findTimer);
    findTimer = setTimeout(() => find(findInput.value, currentStatement >= 0 ? currentStatement : 0, true), 150);
  });
  findInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); go(findPos + (event.shiftKey ? -1 : 1)); }
  });
  document.getElementById("find-next").addEventListener("click", () => go(findPos + 1));
  document.getElementById("find-prev").addEventListener("click", () => go(findPos - 1));

  const playButton = document.getElementById("playpause");
  const toggle = () => { if (media) (media.paused ? media.play() : media.pause()); };
  const back = () => { if (media) seek(Math.max(0, media.currentTime - 5)); };
  const forward = () => { if (media) seek(Math.min(media.duration || Infinity, media.currentTime + 5)); };
  playButton.addEventListener("click", toggle);
  document.getElementById("back5").addEventListener("click", back);
  document.getElementById("forward5").addEventListener("click", forward);
  document.getElementById("speed").addEventListener("change", (event) => { if (media) media.playbackRate = Number(event.target.value); });
  const runSelect = document.getElementById("run-select");
  if (runSelect) runSelect.addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("run", runSelect.value);
    url.searchParams.delete("seq");
    location.href = url.toString();
  });
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const dialog = document.getElementById("conflict");
    if (!dialog.hidden) {
      if (event.key === "Escape") dialog.hidden = true;
      return;
    }
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    if (target === media && [" ", "ArrowLeft", "ArrowRight"].includes(event.key)) return;
    const actions = { " ": toggle, k: toggle, j: back, ArrowLeft: back, l: forward, ArrowRight: forward, "/": () => findInput.focus() };
    const action = actions[event.key];
    if (action && !(target.tagName === "BUTTON" && event.key === " ")) { event.preventDefault(); action(); }
  });

  if (media) {
    media.addEventListener("play", () => {
      playButton.textContent = "Pause";
      if (!follow) followButton.hidden = false;
      requestAnimationFrame(loop);
    });
    media.addEventListener("pause", () => { playButton.textContent = "Play"; });
    media.addEventListener("timeupdate", () => highlightAt(media.currentTime));
    media.addEventListener("seeked", () => highlightAt(media.currentTime));
    media.addEventListener("error", () => say("The media could not be loaded (it may be archived, or the link expired): reload the page.", true));
  }
  const restoreButton = document.getElementById("restore-button");
  if (restoreButton) restoreButton.addEventListener("click", () => restore(restoreButton));
  const metadataForm = document.getElementById("metadata-form");
  if (metadataForm) metadataForm.addEventListener("submit", (event) => { event.preventDefault(); metadata(metadataForm); });
  document.getElementById("conflict-reload").addEventListener("click", () => {
    const url = new URL(location.href);
    if (media) url.searchParams.set("t", media.currentTime.toFixed(3));
    location.href = url.toString();
  });
  document.getElementById("conflict-close").addEventListener("click", () => { document.getElementById("conflict").hidden = true; });

  function start() {
    if (!media || cfg.start === null || cfg.start === undefined) return;
    const jump = () => { media.currentTime = cfg.start; highlightAt(cfg.start); };
    if (media.readyState >= 1) jump();
    else media.addEventListener("loadedmetadata", jump, { once: true });
  }

  async function load() {
    for (const s of cfg.speakers || []) names[s.label] = s.display_name || s.label;
    renderSpeakers();
    start();
    const { response, data } = await api("GET", `/api/v1/media/${cfg.media_id}/transcript${cfg.run_id ? `?run=${cfg.run_id}` : ""}`);
    box.setAttribute("aria-busy", "false");
    if (!response.ok) {
      box.textContent = "";
      box.append(el("p", { class: "error" }, `No transcript: ${(data && data.error) || response.statusText}`));
      return;
    }
    perf.loaded = performance.now();
    statements = data.statements;
    for (const s of data.speakers) names[s.label] = s.display_name || s.label;
    renderSpeakers();
    index();
    layout();
    let focus = 0;
    if (cfg.seq !== null && cfg.seq !== undefined) focus = Math.max(0, statements.findIndex((s) => s.seq === cfg.seq));
    else if (cfg.start !== null && cfg.start !== undefined) focus = statementAt(cfg.start);
    renderBlock(Math.floor(focus / BLOCK));
    if (focus) showStatement(focus);
    if (cfg.start !== null && cfg.start !== undefined) highlightAt(cfg.start);
    if (findInput.value.trim()) find(findInput.value, focus);
    requestAnimationFrame(() => {
      perf.painted = performance.now();
      document.body.dataset.transcriptReady = "1";
    });
  }

  window.mvPlayer = {
    highlightAt, wordAt, seek,
    wordIndex: (span) => firstWord[Number(span.closest(".stmt").dataset.i)] + Number(span.dataset.k),
    current: () => current,
    follow: () => follow,
    statements: () => statements.length,
    words: () => starts.length,
  };
  load();
})();

// ReFORM's page: the library table, the player with similar songs, the mix, the map.
// Plain JavaScript, no dependencies, no build step.  Every text from the library is put in
// the page with textContent, never as HTML.
"use strict";

(() => {
  const ROW = 34;                       // table row height, px (matches --row in style.css)
  const SIMILAR_N = 20;
  const SKIP_AFTER_MS = 1500;           // Play all: how long a song that cannot play shows why
  const HISTORY = 200;                  // songs Previous can go back through
  const RECENT = 20;                    // Next passes over the songs heard among the last RECENT
  const RESTART_AFTER_S = 3;            // Previous after a song's first seconds: back to its start
  const PALETTE = ["#7aa2f7", "#f7768e", "#9ece6a", "#e0af68", "#bb9af7", "#7dcfff", "#ff9e64",
    "#73daca", "#c0caf5", "#2ac3de", "#ff79c6", "#b4f9f8", "#d7a65f", "#9d7cd8", "#41a6b5", "#db4b4b"];
  const NONE_COLOUR = "#4b5263";

  const S = {
    songs: [], byId: new Map(), view: [], genres: [],
    query: "", genre: "", artist: null, album: null, sort: { key: "artist", desc: false },
    current: null, cursor: -1, similar: [], seeds: [], playlist: [], playlistSeeds: [], queue: null, triedWav: false,
    away: null, history: [], resumeAt: null,
    status: null, revision: null, songsLoadedAt: 0, mapModel: null, job: null, failuresFor: null,
    tab: "similar", mixRestored: false,
  };
  window.reform = S;  // for the curious, in the browser's console (and the browser tests)

  // -- small helpers ------------------------------------------------------------------------------
  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => Array.from(document.querySelectorAll(sel));

  function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c != null) el.append(c);
    return el;
  }

  function fill(el, ...children) {  // replaceChildren, leaving out the null and false ones
    el.replaceChildren(...children.flat().filter((c) => c != null && c !== false));
  }

  function refill(list, items) {
    // Redraw a list whose items take the keyboard focus, keeping the focus at the same place
    // (the items are new elements, and a keyboard user would otherwise be sent back to the top)
    const li = document.activeElement && document.activeElement.closest("li");
    const at = li && li.parentElement === list ? [...list.children].indexOf(li) : -1;
    fill(list, ...items);
    if (at >= 0 && list.children.length) list.children[Math.min(at, list.children.length - 1)].focus();
  }

  class ApiError extends Error {
    constructor(status, message, hint) { super(message); this.status = status; this.hint = hint; }
  }

  async function api(path, options = {}) {
    const init = { method: options.method || "GET", headers: { Accept: "application/json" } };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let res;
    try { res = await fetch(path, init); } catch (e) {
      throw new ApiError(0, "the ReFORM server does not answer", "is `reform serve` still running?");
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || res.statusText, data && data.hint);
    return data;
  }

  function toast(message, hint, kind = "error") {
    // the same words said again while they show (a server down answers every request alike) stay one toast
    const t = h("div", { class: `toast ${kind}` }, message, hint ? h("small", { text: hint }) : null);
    const same = [...$("#toasts").children].find((o) => o.textContent === t.textContent);
    if (same) same.remove();
    $("#toasts").append(t);
    setTimeout(() => t.remove(), kind === "error" ? 7000 : 4500);
  }

  const fail = (e) => toast(e.message, e.hint);

  const FOLDED = { "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ð": "d", "ł": "l", "þ": "th", "ı": "i" };

  function norm(text) {   // as reform.text.norm: the same letters folded
    return (text || "").normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase().replace(/[øæœßđðłþı]/g, (c) => FOLDED[c])
      .replace(/[^\p{L}\p{N}_]+/gu, " ").trim();
  }
  window.reformNorm = norm;   // the browser tests hold it to the server's

  function clock(seconds) {
    const s = Math.round(seconds || 0);
    const m = Math.floor(s / 60);
    return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
      : `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
  // a command acting on this library: with --home where the server was given it (the status says how)
  const cmd = (rest) => `${(S.status && S.status.command) || "reform"} ${rest}`;

  function hashOf(text) {
    let x = 2166136261;
    for (let i = 0; i < text.length; i++) { x ^= text.charCodeAt(i); x = Math.imul(x, 16777619); }
    return x >>> 0;
  }

  const byline = (s) => [s.artist || "Unknown artist", s.album].filter(Boolean).join(" · ");

  // -- the library ---------------------------------------------------------------------------------
  async function loadSongs() {
    const data = await api("/api/songs");
    S.songs = data.items;
    S.byId = new Map(S.songs.map((s) => [s.id, s]));
    for (const s of S.songs) {  // normalised once: typing and sorting never normalise again
      s.n = { artist: norm(s.artist), album: norm(s.album), title: norm(s.title), genre: norm(s.genre) };
      s.hay = [s.n.artist, s.n.title, s.n.album, norm(s.file), norm(s.folder)].join(" ");   // (folder: untagged only)
    }
    S.sorted = null;
    S.songsLoadedAt = Date.now();
    const genres = [...new Set(S.songs.map((s) => s.genre).filter(Boolean))].sort((a, b) => a.localeCompare(b));
    if (genres.join("\n") !== S.genres.join("\n")) {
      S.genres = genres;
      const sel = $("#filter-genre");
      fill(sel, h("option", { value: "", text: "All genres" }), ...genres.map((g) => h("option", { value: g, text: g })));
      sel.value = genres.includes(S.genre) ? S.genre : "";
      sel.hidden = genres.length === 0;
    }
    applyView(false);
  }

  function libraryChanged(before) {
    // After a scan (from the page or a terminal): songs that are gone leave the mix and the
    // player, which say so, rather than stay shown and be left out of requests in silence; an
    // error of the player may be out of date (the scan found the file again).
    const gone = (id) => !S.byId.has(id);
    const lost = [...new Set([...S.seeds, ...S.playlist.map((s) => s.id)])].filter(gone);
    const name = (id) => (before.has(id) ? before.get(id).title : `song ${id}`);
    if (lost.length > 3) toast(`${plural(lost.length, "song")} of the mix were removed from the library`, null, "info");
    else for (const id of lost) toast(`${name(id)} was removed from the library`, null, "info");
    if (lost.length) {
      S.seeds = S.seeds.filter((id) => !gone(id));
      leavePlaylist((s) => gone(s.id));
      renderSeeds(); renderPlaylist(); renderRows(); drawMap();
    }
    if (S.current == null) return;
    if (gone(S.current)) { currentRemoved(before.get(S.current)); return; }
    retryPlayer();
    loadSimilar();
  }

  function leavePlaylist(out) {
    // Take the songs ``out`` says out of the playlist; the one playing, taken out, leaves its place
    // for Next (and the end of the song) to go on from: the song that followed it.
    const at = S.queue;
    if (at != null && out(S.playlist[at])) S.resumeAt = S.playlist.slice(0, at).filter((s) => !out(s)).length;
    S.playlist = S.playlist.filter((s) => !out(s));
    if (S.queue != null) S.queue = S.playlist.findIndex((s) => s.id === S.current);
    if (S.queue != null && S.queue < 0) S.queue = null;
  }

  function currentRemoved(song) {
    // The song open in the player is no longer in the library: it cannot play, nor be compared
    // (Previous and Next go on from its place).
    const title = song ? song.title : "The song";
    S.current = null; S.queue = null; S.similar = []; S.cursor = -1;
    const player = $("#player");
    player.pause(); player.removeAttribute("src"); player.load();
    $("#player-msg").hidden = true;
    $("#now-sub").textContent = "removed from the library by the last scan";
    updateAddButtons();   // (it left the mix too: not a ✓ beside it)
    $("#now-add").disabled = true;
    updateTransport();
    fill($("#similar-list"));
    const empty = $("#similar-empty");
    empty.hidden = false;
    fill(empty, `${title} was removed from the library: there is nothing to compare it with.`);
    renderRows(); renderPlaylist(); drawMap();
  }

  function retryPlayer() {
    // The scan may have found the file again, or its folder is back: the player forgets its error
    // and loads it anew.
    const msg = $("#player-msg");
    if (msg.hidden) return;
    msg.hidden = true;
    S.triedWav = false;
    $("#player").src = `/api/songs/${S.current}/audio`;
  }

  const collator = new Intl.Collator(undefined, { numeric: true });

  function sortedSongs() {
    // The whole library in the current order, sorted once per order and per loading of the songs;
    // songs without the sorted tag come last in both directions.
    const { key, desc } = S.sort;
    if (S.sorted && S.sorted.key === key && S.sorted.desc === desc) return S.sorted.songs;
    const text = (a, b, k) => collator.compare(a.n[k], b.n[k]);
    const orders = {
      artist: (a, b) => text(a, b, "artist") || text(a, b, "album") || (a.track || 0) - (b.track || 0) || text(a, b, "title"),
      album: (a, b) => text(a, b, "album") || (a.track || 0) - (b.track || 0) || text(a, b, "title"),
      title: (a, b) => text(a, b, "title") || text(a, b, "artist"),
      year: (a, b) => (a.year || 0) - (b.year || 0) || text(a, b, "artist") || text(a, b, "title"),
      genre: (a, b) => text(a, b, "genre") || text(a, b, "artist") || text(a, b, "title"),
      duration: (a, b) => a.duration - b.duration,
    };
    const tagged = ["artist", "album", "year", "genre"].includes(key);
    const missing = (s) => tagged && (s[key] == null || s[key] === "");
    const present = S.songs.filter((s) => !missing(s)), absent = S.songs.filter(missing);
    const sign = desc ? -1 : 1;
    present.sort((a, b) => sign * orders[key](a, b));
    absent.sort((a, b) => text(a, b, "title"));
    S.sorted = { key, desc, songs: present.concat(absent) };
    return S.sorted.songs;
  }

  function matcher() {
    // What a song must hold to be listed, as /api/songs searches: every word of the query (letters
    // and digits, normalised); for a query of neither (an emoji, "&"), the query as written, case
    // aside, in the artist, title, album or file name.  Null when every song is listed.
    const words = norm(S.query).split(" ").filter(Boolean);
    const symbols = words.length ? "" : S.query.trim().toLowerCase();
    const genre = norm(S.genre), artist = S.artist && norm(S.artist), album = S.album && norm(S.album);
    if (!words.length && !symbols && !genre && !artist && !album) return null;
    const found = symbols ? (s) => [s.artist, s.title, s.album, s.file].some((v) => (v || "").toLowerCase().includes(symbols))
      : (s) => words.every((w) => s.hay.includes(w));
    return (s) => found(s) && (!genre || s.n.genre === genre) && (!artist || s.n.artist === artist) && (!album || s.n.album === album);
  }

  function applyView(resetScroll = true) {
    const all = sortedSongs(), wanted = matcher();
    const view = wanted ? all.filter(wanted) : all;
    S.view = view;
    S.cursor = S.current != null ? view.findIndex((s) => s.id === S.current) : -1;
    $("#spacer").style.height = `${view.length * ROW}px`;
    const total = S.songs.length;
    $("#lib-count").textContent = view.length === total ? plural(total, "song") : `${view.length.toLocaleString()} of ${plural(total, "song")}`;
    const empty = $("#lib-empty");
    empty.hidden = view.length > 0;
    if (!view.length) {
      fill(empty, total ? "No song matches." : h("span", {}, "The library is empty: run ", h("code", { text: cmd("scan FOLDER") }), "."));
    }
    $$(".thead button").forEach((b) => {
      b.classList.toggle("sorted", b.dataset.sort === S.sort.key);
      b.classList.toggle("desc", b.dataset.sort === S.sort.key && S.sort.desc);
    });
    renderChips();
    if (resetScroll) {
      $("#tbody").scrollTop = 0;
      if (!S.query && S.cursor >= 0) scrollToSong(S.current);  // back to the song playing
    }
    renderRows();
  }

  function renderChips() {
    const chips = [];
    for (const key of ["artist", "album"]) {
      if (S[key] == null) continue;
      chips.push(h("span", { class: "chip", title: `only this ${key}` }, h("span", { text: `${key}: ${S[key] || "none"}` }),
        h("button", { "aria-label": `show every ${key}`, text: "×", onclick: () => { S[key] = null; applyView(); } })));
    }
    fill($("#filter-chips"), ...chips);
  }

  let rowsLayer = null;
  function renderRows() {
    const body = $("#tbody");
    if (!rowsLayer) { rowsLayer = h("div", { class: "rows" }); body.append(rowsLayer); }
    const first = Math.max(0, Math.floor(body.scrollTop / ROW) - 8);
    const last = Math.min(S.view.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW) + 8);
    const seeds = new Set(S.seeds);
    const rows = [];
    for (let i = first; i < last; i++) {
      const s = S.view[i];
      const row = h("div", {
        class: `row${s.id === S.current ? " current" : ""}${i === S.cursor ? " cursor" : ""}`,
        "data-id": s.id, role: "row", title: s.file },
      h("span", { class: "col-title" }, h("i", { class: `dot${s.embedded ? " on" : ""}`, title: s.embedded ? "" : "no embedding yet" }), h("span", { text: s.title })),
      h("span", { class: "col-artist", text: s.artist || "—" }),
      h("span", { class: "col-album", text: s.album || "—" }),
      h("span", { class: "col-year num", text: s.year || "" }),
      h("span", { class: "col-time num", text: clock(s.duration) }),
      // out of the tab order: the table's own keys add the row under the cursor (+)
      h("button", { class: `add${seeds.has(s.id) ? " in" : ""}`, "data-add": s.id, tabindex: -1, title: seeds.has(s.id) ? "Remove from the mix (+)" : "Add to the mix (+)", text: seeds.has(s.id) ? "✓" : "+" }));
      row.style.top = `${i * ROW}px`;
      rows.push(row);
    }
    fill(rowsLayer, ...rows);
  }

  function scrollToSong(id) {
    const i = S.view.findIndex((s) => s.id === id);
    if (i < 0) return;
    const body = $("#tbody");
    if (i * ROW < body.scrollTop || (i + 1) * ROW > body.scrollTop + body.clientHeight) {
      body.scrollTop = Math.max(0, i * ROW - body.clientHeight / 3);
    }
  }

  // -- what a reload keeps: the mix (sessionStorage) and the song open (the address) --------------
  const MIX_KEY = "reform.mix";

  function saveMix() {
    if (!S.mixRestored) return;  // not before the saved one is read: it would be overwritten
    const playlist = S.playlist.map((s) => ({ id: s.id, score: s.score, flow: s.flow }));
    const playing = S.queue != null && S.playlist[S.queue] ? S.playlist[S.queue].id : null;   // on after a reload
    try { sessionStorage.setItem(MIX_KEY, JSON.stringify({ seeds: S.seeds, playlist, playlistSeeds: S.playlistSeeds, playing })); } catch (e) { /* storage off: nothing kept */ }
  }

  function savedMix() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(MIX_KEY));
      const list = (x) => (Array.isArray(x) ? x : []);
      return { seeds: list(saved.seeds), playlist: list(saved.playlist), playlistSeeds: list(saved.playlistSeeds),
        playing: Number.isInteger(saved.playing) ? saved.playing : null };
    } catch (e) { return { seeds: [], playlist: [], playlistSeeds: [], playing: null }; }
  }

  function restoreMix() {
    // The mix of before the reload, checked against the library as it is now: songs a scan
    // removed in between are left out, and the page says how many.
    const saved = savedMix();
    const known = (id) => Number.isInteger(id) && S.byId.has(id);
    S.seeds = [...new Set(saved.seeds.filter(known))];
    S.playlistSeeds = saved.playlistSeeds.filter(known);
    const kept = saved.playlist.filter((p) => p && Number.isInteger(p.id));
    S.playlist = kept.map((p, i) => ({ ...S.byId.get(p.id), id: p.id, score: Number(p.score) || 0,
      flow: typeof p.flow === "number" ? p.flow : null, prev: i ? kept[i - 1].id : null })).filter((p) => known(p.id));
    const at = S.playlist.findIndex((s) => s.id === saved.playing);
    S.queue = at >= 0 && saved.playing === songInAddress() ? at : null;
    S.mixRestored = true;
    const lost = saved.seeds.length + saved.playlist.length - S.seeds.length - S.playlist.length;
    if (lost) toast(`${plural(lost, "song")} of the mix ${lost === 1 ? "is" : "are"} no longer in the library`, null, "info");
    renderSeeds(); renderPlaylist(); renderRows(); updateAddButtons();
  }

  function songInAddress() {
    const m = /^#song=(\d+)$/.exec(location.hash);
    return m ? Number(m[1]) : null;
  }

  function openFromAddress() {
    // #song=ID: a reload opens the song again, Back and Forward go through the songs opened.
    const id = songInAddress();
    if (id == null || id === S.current) return;
    // a song of the playlist that plays (a reload, Back): it goes on playing from there
    const at = S.queue != null ? S.playlist.findIndex((s) => s.id === id) : -1;
    if (at >= 0) S.queue = at;
    if (S.byId.has(id)) select(id, { from: "address", keepQueue: at >= 0 }); else toast("the song of this address is no longer in the library", null, "info");
  }

  function opened() {  // once the songs are first loaded
    restoreMix();
    openFromAddress();
  }

  // -- playing and the similar songs ------------------------------------------------------------------
  async function select(id, { from = "", keepQueue = false, back = false } = {}) {
    const song = S.byId.get(id);
    if (!song) return;
    if (!keepQueue) S.queue = null;
    S.resumeAt = null;
    if (!back && S.current != null && S.current !== id) {   // what Previous goes back to
      S.history.push(S.current);
      if (S.history.length > HISTORY) S.history.shift();
    }
    S.current = id;
    if (songInAddress() !== id) location.hash = `song=${id}`;
    const i = S.view.findIndex((s) => s.id === id);
    if (i >= 0) S.cursor = i;
    showNow(song);
    play(song);
    if (from !== "table") scrollToSong(id);
    renderRows();
    renderPlaylist();
    S.similar = [];
    drawMap();
    await loadSimilar();
  }

  function showNow(song) {
    $("#now-title").textContent = $("#now-title").title = song.title;
    const sub = $("#now-sub");
    const link = (key) => h("a", { text: song[key], title: `show only this ${key} in the library`, onclick: () => { S[key] = song[key]; if (key === "artist") S.album = null; applyView(); scrollToSong(song.id); } });
    const parts = [];
    if (song.artist) parts.push(link("artist")); else parts.push("Unknown artist");
    if (song.album) parts.push(" · ", link("album"));
    if (song.year) parts.push(` · ${song.year}`);
    fill(sub, ...parts);
    const a = hashOf(song.artist || song.title), b = hashOf(song.album || song.title);
    $("#cover").style.background = `linear-gradient(135deg, hsl(${a % 360} 55% 42%), hsl(${(b % 360)} 60% 22%))`;
    $("#now-add").disabled = false;
    updateAddButtons();
    if ("mediaSession" in navigator && window.MediaMetadata) {   // the system's media controls name it
      navigator.mediaSession.metadata = new MediaMetadata({ title: song.title, artist: song.artist || "", album: song.album || "" });
    }
  }

  function play(song) {
    const player = $("#player");
    S.triedWav = false;
    $("#player-msg").hidden = true;
    player.src = `/api/songs/${song.id}/audio`;
    player.play().catch(() => {});  // autoplay may be refused before the first click: controls remain
  }

  async function playerFailed() {
    const player = $("#player");
    if (S.current == null || !player.getAttribute("src")) return;
    if (!S.triedWav) {  // the browser could not play the file's format: ask the server to decode it
      S.triedWav = true;
      player.src = `/api/songs/${S.current}/audio?format=wav`;
      player.play().catch(() => {});
      return;
    }
    const id = S.current;
    const why = await whyUnplayable(id);
    if (id !== S.current) return;
    const msg = $("#player-msg");
    msg.textContent = why;
    msg.hidden = false;
    S.away = why.includes("folder is not there") ? id : null;
    if (S.queue == null) return;
    // Play all goes on with the next song; the error stays in view a moment, and in a toast
    toast(`skipped ${S.byId.get(id).title}: ${why}`, null, "info");
    setTimeout(() => { if (S.current === id && S.queue != null) songEnded(); }, SKIP_AFTER_MS);
  }

  async function whyUnplayable(id) {
    // The server's reason (a file moved since the scan, ...), or that it does not answer at all
    let res;
    try { res = await fetch(`/api/songs/${id}/audio?format=wav`, { headers: { Range: "bytes=0-0" } }); } catch (e) {
      return "the ReFORM server does not answer (is `reform serve` still running?)";
    }
    const data = res.ok ? null : await res.json().catch(() => null);
    return data && data.error ? data.error + (data.hint ? ` (${data.hint})` : "") : "this song cannot be played";
  }

  // -- previous and next ---------------------------------------------------------------------------------
  function nextSong() {
    // The playlist's next song while it plays (or the one after the place of a song taken out of it);
    // after it, or without one, the song most like the one playing that was not heard lately (a
    // song's list holds itself, and the songs before it)
    if (S.queue == null && S.resumeAt != null && S.resumeAt < S.playlist.length) return { queue: S.resumeAt };
    if (S.current == null) return null;
    if (S.queue != null && S.queue + 1 < S.playlist.length) return { queue: S.queue + 1 };
    const heard = new Set([S.current, ...S.history.slice(-RECENT)]);
    const song = S.similar.find((s) => !heard.has(s.id));
    return song ? { id: song.id } : null;
  }

  function playNext() {
    const next = nextSong();
    if (!next) return;
    if (next.queue != null) playFrom(next.queue); else select(next.id, { from: "similar" });
  }

  function playPrevious() {
    // As players do: back to the start of the song after its first seconds, else the song before
    // (the playlist's, while it plays; else the one played before)
    const player = $("#player");
    while (S.history.length && !S.byId.has(S.history[S.history.length - 1])) S.history.pop();   // (gone since)
    if (S.queue == null && S.resumeAt) { playFrom(S.resumeAt - 1); return; }   // before a song taken out
    if (S.current == null) {   // removed by a scan: the one played before it
      if (S.history.length) select(S.history.pop(), { back: true });
      return;
    }
    const before = S.queue != null ? S.queue > 0 : S.history.length > 0;
    if (player.currentTime > RESTART_AFTER_S || !before) {
      player.currentTime = 0;
      player.play().catch(() => {});
    } else if (S.queue != null) playFrom(S.queue - 1);
    else select(S.history.pop(), { back: true });
  }

  function updateTransport() {
    $("#prev").disabled = S.current == null && !S.resumeAt && !S.history.length;
    $("#next").disabled = !nextSong();
  }

  function songEnded() {
    const next = nextSong();   // a playlist goes on (past a song taken out of it); a song alone ends
    if (next && next.queue != null) playFrom(next.queue); else S.queue = null;
  }

  async function loadSimilar() {
    const id = S.current;
    const list = $("#similar-list"), empty = $("#similar-empty");
    const song = S.byId.get(id);
    fill($("#similar-title"), "Songs like ", h("b", { text: song ? song.title : "…" }));
    if (!S.status || !S.status.embeddings.songs) {
      fill(list, );
      empty.hidden = false;
      fill(empty, ...noEmbeddingsMessage());
      return;
    }
    const other = $("#other-artists").checked ? "&exclude_same_artist=true" : "";
    try {
      const data = await api(`/api/songs/${id}/similar?n=${SIMILAR_N}${other}`);
      if (id !== S.current) return;
      S.similar = data.items;
      renderSimilar();
    } catch (e) {
      if (id !== S.current) return;
      S.similar = [];
      fill(list, );
      empty.hidden = false;
      fill(empty, h("div", { text: e.message }), e.hint ? h("div", { class: "muted", text: e.hint }) : null);
    }
    drawMap();
  }

  function noEmbeddingsMessage() {
    const model = S.status && S.status.model;
    if (S.status && !S.status.songs) {  // `reform embed` would do nothing: songs come first
      return [h("div", { text: "The library is empty: recommendations and the map need songs." }),
        h("div", {}, "Run ", h("code", { text: cmd("scan FOLDER") }), " first.")];
    }
    if (model && !model.name) {
      return [h("div", { text: "No model yet: recommendations need one." }),
        h("div", {}, "Train one with ", h("code", { text: cmd("train") }), ", then ", h("code", { text: cmd("embed") }), ".")];
    }
    return [h("div", { text: "No embeddings yet: recommendations and the map need them." }),
      h("div", {}, "Run ", h("code", { text: cmd("embed") }), " or use Embed songs on the Library status tab.")];
  }

  function scoreCell(score) {
    const bar = h("i");
    bar.style.setProperty("--w", `${Math.max(0, Math.min(1, score)) * 100}%`);
    return h("span", { class: "score", title: "cosine similarity (1: identical)" }, h("b", { text: score.toFixed(3) }), bar);
  }

  function nothingElse(seeds) {
    // Why a recommendation came back empty: the embedded songs are all among the `seeds` songs
    // (a one-song library), or the filters left every other song out.
    return S.status && S.status.embeddings.songs <= seeds ? "The library has no other song to recommend."
      : "No other song passes the filter.";
  }

  function renderSimilar() {
    updateTransport();
    const seeds = new Set(S.seeds);
    $("#similar-empty").hidden = S.similar.length > 0;
    // as the command line says it: a score rising down the list looked like a mistake
    $("#similar-note").hidden = !S.similar.some((s, i) => i > 0 && s.score > S.similar[i - 1].score);
    if (!S.similar.length) fill($("#similar-empty"), nothingElse(1));
    refill($("#similar-list"), S.similar.map((s, i) => h("li", { class: `item${s.id === S.current ? " current" : ""}`, "data-id": s.id, tabindex: 0, "aria-keyshortcuts": "Enter", title: "play it and show the songs like it (Enter)" },
      h("span", { class: "rank", text: i + 1 }),
      h("span", {}, h("div", { class: "t", text: s.title, title: s.title }), h("div", { class: "s", text: byline(s) })),
      scoreCell(s.score),
      h("button", { class: `add${seeds.has(s.id) ? " in" : ""}`, "data-add": s.id, title: seeds.has(s.id) ? "Remove from the mix" : "Add to the mix", text: seeds.has(s.id) ? "✓" : "+" }))));
  }

  // -- the mix and its playlist -------------------------------------------------------------------------
  function toggleSeed(id) {
    const i = S.seeds.indexOf(id);
    if (i >= 0) S.seeds.splice(i, 1); else S.seeds.push(id);
    renderSeeds();
    renderRows();
    renderSimilar();
    updateAddButtons();
  }

  function updateAddButtons() {
    const btn = $("#now-add");
    const inMix = S.seeds.includes(S.current);
    btn.textContent = inMix ? "✓" : "+";
    btn.title = inMix ? "Remove from the mix" : "Add to the mix";
  }

  function renderSeeds() {
    const count = $("#mix-count");
    count.hidden = S.seeds.length === 0;
    count.textContent = S.seeds.length;
    $("#seeds-empty").hidden = S.seeds.length > 0;
    $("#mix-clear").hidden = S.seeds.length === 0;
    $("#mix-make").disabled = S.seeds.length === 0;
    saveMix();  // every change of the seeds is drawn here: kept for a reload here too
    fill($("#seeds"), ...S.seeds.map((id) => {
      const s = S.byId.get(id);
      return h("span", { class: "chip", title: byline(s) }, h("span", { text: s.title }),
        h("button", { "aria-label": "remove from the mix", text: "×", onclick: () => toggleSeed(id) }));
    }));
  }

  async function makePlaylist() {
    const length = $("#mix-length").value, per = $("#mix-per-artist").value;
    const query = S.seeds.map((id) => `seed=${id}`).join("&") + `&length=${length}` + (per ? `&max_per_artist=${per}` : "");
    const button = $("#mix-make");
    button.disabled = true;
    try {
      const data = await api(`/api/playlist?${query}`);
      S.playlist = data.items.map((s, i, all) => ({ ...s, prev: i ? all[i - 1].id : null }));
      S.playlistSeeds = data.seeds.map((s) => s.id);
      S.queue = null;
      // a shorter playlist than asked for, or embeddings from another model, said as the command line says them
      const notes = data.items.length ? data.notes : [nothingElse(data.seeds.length)];
      const empty = $("#playlist-empty");
      empty.hidden = notes.length === 0;
      fill(empty, ...notes.map((n) => h("div", { text: n })));
      renderPlaylist();
      drawMap();
    } catch (e) { fail(e); } finally { button.disabled = S.seeds.length === 0; }
  }

  let dragFrom = null;
  function renderPlaylist() {
    updateTransport();
    const list = $("#playlist");
    $("#playlist-head").hidden = S.playlist.length === 0;
    const total = S.playlist.reduce((t, s) => t + (s.duration || 0), 0);
    $("#playlist-info").textContent = S.playlist.length ? `${plural(S.playlist.length, "song")}, ${clock(total)}` : "";
    const exp = $("#playlist-export");
    // the file starts with the songs the playlist was made from, as `reform playlist -o` starts with its seeds
    const inList = new Set(S.playlist.map((s) => s.id));
    const ids = [...S.playlistSeeds.filter((id) => !inList.has(id) && S.byId.has(id)), ...inList];
    exp.href = S.playlist.length ? `/api/export.m3u?name=reform-mix&${ids.map((id) => `id=${id}`).join("&")}` : "#";
    exp.classList.toggle("disabled", !S.playlist.length);
    // a song's ↝ is its similarity to the song it followed when the playlist was made: gone once
    // a move or a removal gives it another one before it
    S.playlist.forEach((s, i) => { if (s.prev !== (i ? S.playlist[i - 1].id : null)) s.flow = null; });
    saveMix();  // every change of the playlist is drawn here: kept for a reload here too
    refill(list, S.playlist.map((s, i) => h("li", {
      class: `item${s.id === S.current ? " current" : ""}`, draggable: "true", "data-index": i, "data-id": s.id,
      tabindex: 0, "aria-keyshortcuts": "Enter", title: "play from here (Enter)" },
    h("span", { class: "handle", title: "drag to reorder", text: "⋮⋮" }),
    h("span", { class: "rank", text: i + 1 }),
    h("span", {}, h("div", { class: "t", text: s.title, title: s.title }), h("div", { class: "s", text: byline(s) })),
    h("span", { class: "flow", title: i ? "similarity to the previous song" : "similarity to the first song of the mix", text: s.flow != null ? `↝ ${s.flow.toFixed(2)}` : "" }),
    h("span", { class: "moves" },
      h("button", { title: "move up", "data-move": "-1", text: "↑" }),
      h("button", { title: "move down", "data-move": "1", text: "↓" }),
      h("button", { title: "remove", "data-move": "x", text: "✕" })))));
  }

  function playFrom(i) {  // the playlist, from its i-th song on
    S.queue = i;
    select(S.playlist[i].id, { keepQueue: true });
  }

  function movePlaylist(from, to) {
    if (to < 0 || to >= S.playlist.length || from === to) return;
    const [item] = S.playlist.splice(from, 1);
    S.playlist.splice(to, 0, item);
    if (S.queue != null) S.queue = S.playlist.findIndex((s) => s.id === S.current);
    renderPlaylist();
    drawMap();
  }

  function bindPlaylist() {
    const list = $("#playlist");
    list.addEventListener("click", (ev) => {
      const li = ev.target.closest("li");
      if (!li) return;
      const i = Number(li.dataset.index);
      const move = ev.target.closest("[data-move]");
      if (move) {
        if (move.dataset.move === "x") { const gone = S.playlist[i]; leavePlaylist((s) => s === gone); renderPlaylist(); drawMap(); } else movePlaylist(i, i + Number(move.dataset.move));
        return;
      }
      playFrom(i);
    });
    onEnter(list, (li) => playFrom(Number(li.dataset.index)));
    list.addEventListener("dragstart", (ev) => {
      const li = ev.target.closest("li");
      dragFrom = Number(li.dataset.index);
      li.classList.add("dragging");
      ev.dataTransfer.effectAllowed = "move";
      ev.dataTransfer.setData("text/plain", String(dragFrom));
    });
    list.addEventListener("dragover", (ev) => {
      const li = ev.target.closest("li");
      if (!li || dragFrom == null) return;
      ev.preventDefault();
      const after = ev.offsetY > li.offsetHeight / 2;
      $$("#playlist li").forEach((x) => x.classList.remove("drop-before", "drop-after"));
      li.classList.add(after ? "drop-after" : "drop-before");
    });
    list.addEventListener("drop", (ev) => {
      const li = ev.target.closest("li");
      if (!li || dragFrom == null) return;
      ev.preventDefault();
      let to = Number(li.dataset.index) + (li.classList.contains("drop-after") ? 1 : 0);
      if (to > dragFrom) to -= 1;
      const from = dragFrom;
      dragFrom = null;
      movePlaylist(from, to);
      renderPlaylist();
    });
    list.addEventListener("dragend", () => { dragFrom = null; renderPlaylist(); });
  }

  // -- library status, jobs, failures -------------------------------------------------------------------
  async function refreshStatus() {
    let st;
    try { st = await api("/api/status"); } catch (e) {
      fill($("#sb-library"), h("span", { class: "bad", text: `● ${e.message}` }));
      return null;
    }
    const first = S.status == null;
    const modelChanged = !first && st.embeddings.model !== S.status.embeddings.model;
    S.status = st;
    // a song whose folder was away (a disk not mounted) plays once its first byte can be read again
    if (S.away != null && S.away === S.current) {
      const id = S.away;
      fetch(`/api/songs/${id}/audio`, { headers: { Range: "bytes=0-0" } }).then(async (r) => {
        if (S.away !== id || S.current !== id) return;
        if (r.ok) { S.away = null; retryPlayer(); return; }
        const why = await r.json().catch(() => ({}));
        if (why.error && !why.error.includes("folder is not there")) {  // back, but the file is not: say so, stop asking
          S.away = null;
          $("#player-msg").textContent = why.hint ? `${why.error} (${why.hint})` : why.error;
        }
      }).catch(() => {});
    }
    const jobFinished = S.job && S.job.state === "running" && (!st.job || st.job.id !== S.job.id);
    if (st.job) S.job = st.job;
    if (jobFinished) {
      const done = await api(`/api/jobs/${S.job.id}`).catch(() => null);
      if (done) {
        S.job = done;
        if (done.state === "done") toast(`${done.kind} finished`, done.summary, "info");
        else if (done.state === "stopped") toast(`${done.kind} stopped`, done.hint, "info");
        else toast(`${done.kind} failed: ${done.error}`, done.hint);
      }
    }
    const stale = st.revision !== S.revision;
    const running = st.job && st.job.state === "running";
    if (stale && (!running || Date.now() - S.songsLoadedAt > 5000 || first)) {
      S.revision = st.revision;
      const before = S.byId;
      await loadSongs();
      if (first) opened(); else libraryChanged(before);
    }
    if (first || modelChanged || (stale && st.embeddings.model && S.mapModel !== `${st.embeddings.model}:${st.embeddings.songs}`)) loadMap();
    renderStatus();
    return st;
  }

  async function poll() {
    const st = await refreshStatus();
    setTimeout(poll, st && st.job ? 1000 : 4000);
  }

  function renderStatus() {
    const st = S.status;
    const m = st.model || {};
    const emb = st.embeddings;
    // status bar
    const sep = () => h("span", { class: "sep", text: "|" });
    fill($("#sb-library"), 
      h("span", { class: "ok", text: "● " }), h("b", { text: plural(st.songs, "song") }), ` · ${st.hours.toFixed(1)} h`, sep(),
      st.failed ? h("span", { class: "bad", text: `${st.failed} failed` }) : "0 failed", sep(),
      plural(st.duplicates, "duplicate"), sep(),
      emb.songs ? `${emb.songs.toLocaleString()} embedded` : h("span", { class: "warn", text: "no embeddings" }),
      emb.missing && emb.songs ? h("span", { class: "warn", text: ` (${emb.missing} waiting)` }) : "");
    $("#home").textContent = `\u200e${st.home}\u200e`;  // marks keep the slashes in place (rtl box)
    fill($("#sb-model"), m.name ? h("span", {}, "model ", h("b", { text: m.name }), m.version ? ` · ${m.version}` : "") : h("span", { class: "warn", text: "no model" }));
    // notice under the top bar
    const notice = $("#notice");
    const lines = [];
    if (!st.songs) lines.push(["The library is empty: run ", h("code", { text: cmd("scan FOLDER") }), " to add your music; recommendations and the map come with it."]);
    else if (!emb.songs && !m.name) lines.push(["No model yet: train one with ", h("code", { text: cmd("train") }), ", then ", h("code", { text: cmd("embed") }), " to get recommendations and the map."]);
    else if (!emb.songs) lines.push(["No embeddings yet: recommendations and the map need them. Run ", h("code", { text: cmd("embed") }), " (or Embed songs on the Library status tab)."]);
    else if (m.name && !m.embeddings_current) lines.push(["The embeddings come from another model than the active one: run ", h("code", { text: cmd("embed") }), " to bring them up to date."]);
    else if ((st.missing_folders || []).length) lines.push([`Music folder ${st.missing_folders[0]} is not there (a disk not mounted?): its songs are kept, and cannot be played until it is back.`]);
    else if (emb.missing) lines.push([`${plural(emb.missing, "song")} ${emb.missing === 1 ? "has" : "have"} no embedding yet and cannot be recommended: run `, h("code", { text: cmd("embed") }), "."]);
    notice.hidden = lines.length === 0;
    fill(notice, ...(lines[0] || []));
    // the status tab
    const stat = (value, label, kind) => h("div", { class: `stat${kind ? ` ${kind}` : ""}` }, h("b", { text: value }), h("span", { text: label }));
    fill($("#stats"), 
      stat(st.songs.toLocaleString(), "songs"), st.hours < 1 ? stat((st.hours * 60).toFixed(0), "minutes of audio") : stat(st.hours.toFixed(1), "hours of audio"),
      stat(st.failed.toLocaleString(), "failed files", st.failed ? "bad" : ""),
      stat(st.duplicates.toLocaleString(), "duplicate files"),
      // embeddings of another model than the active one (after `reform use`): every song waits for `embed`
      ...(m.name && emb.songs && !m.embeddings_current
        ? [stat(emb.songs.toLocaleString(), "embedded by another model", "warn"),
          stat((emb.songs + emb.missing).toLocaleString(), "waiting for embedding", "warn")]
        : [stat(emb.songs.toLocaleString(), "embedded", emb.songs ? "" : "warn"),
          stat(emb.missing.toLocaleString(), "waiting for embedding", emb.missing ? "warn" : "")]));
    renderModel(m, emb);
    renderJob();
    if (S.tab === "status" && S.failuresFor !== st.revision) loadFailures();
  }

  function renderModel(m, emb) {
    const card = $("#model-card");
    if (!m.name) {
      fill(card, h("div", { class: "card-title", text: "Model" }),
        h("div", { class: "muted" }, m.error || "no model", m.hint ? h("div", { text: m.hint }) : null));
      return;
    }
    const info = m.info || {};
    const epochs = info.epochs ? `${info.epochs.pretrain || 0} pretraining + ${info.epochs.cluster || 0} clustering` : "—";
    const state = m.embeddings_current ? h("span", { class: "tag ok", text: "embeddings up to date" })
      : emb.songs ? h("span", { class: "tag warn", text: "embeddings from another model" }) : h("span", { class: "tag bad", text: "no embeddings" });
    const kv = (k, v) => [h("dt", { text: k }), h("dd", { text: v })];
    const children = [h("div", { class: "card-title" }, "Model ", h("span", { class: "muted", text: m.name }), h("span", { class: "grow" }), state),
      h("dl", { class: "kv" }, kv("version", m.version || "—"), kv("kind", m.kind === "cluster" ? "both phases (clustering)" : (m.kind || "—")),
        kv("trained on", info.songs ? plural(info.songs, "song") : "—"), kv("epochs", epochs),
        kv("training time", info.train_seconds != null ? `${Math.round(info.train_seconds)} s` : "—"), kv("finished", info.finished_at || "—"))];
    if (m.evaluation && Object.keys(m.evaluation).length) {
      const rows = Object.entries(m.evaluation);
      const cols = ["same_song_top1", "same_song_mrr", "p5", "p10", "map"].filter((c) => rows.some(([, r]) => r[c] != null));
      const names = { same_song_top1: "same-song top-1", same_song_mrr: "MRR", p5: "p@5", p10: "p@10", map: "mAP" };
      // the best of each column marked, as `reform evaluate` bolds it (ties all marked)
      const shown = (v) => (v == null ? "" : Number(v).toFixed(3));
      const best = Object.fromEntries(cols.map((c) => [c, shown(Math.max(...rows.map(([, r]) => r[c] ?? -Infinity)))]));
      children.push(h("div", { class: "card-title" }, "Evaluation", h("span", { class: "muted", text: m.evaluation_labels ? `labels: ${m.evaluation_labels}` : "" })),
        h("table", { class: "eval" }, h("tr", {}, h("th", { text: "method" }), ...cols.map((c) => h("th", { text: names[c] }))),
          ...rows.map(([name, r]) => h("tr", {}, h("td", { text: name }), ...cols.map((c) => h("td", { class: r[c] != null && shown(r[c]) === best[c] ? "best" : "", text: shown(r[c]) }))))));
    } else {
      children.push(h("div", { class: "muted" }, "No evaluation of this model on this library yet: ", h("code", { text: cmd("evaluate") }), " measures it and keeps its figures, which show here."));
    }
    fill(card, ...children);
  }

  function renderJob() {
    const job = S.job;
    const running = job && job.state === "running";
    $$("[data-job]").forEach((b) => { b.disabled = !!running; });
    const top = $("#top-job");
    top.hidden = !running;
    const box = $("#job");
    if (!job) { fill(box, h("div", { class: "muted", text: "Long work runs here with live progress; the page stays usable." })); return; }
    const frac = job.total ? Math.min(1, job.done / job.total) : null;
    const bar = h("div", { class: `bar${running && frac == null ? " indeterminate" : ""}` }, h("div"));
    // a stopped job's bar shows how far it got; a finished or failed one's is done
    bar.firstChild.style.width = `${running || job.state === "stopped" ? (frac ?? 0) * 100 : 100}%`;
    const counter = job.total ? `${job.done.toLocaleString()} / ${job.total.toLocaleString()} ${job.unit}` : "";
    const label = running ? `${job.kind}: ${job.phase}` : `${job.kind} ${{ done: "finished", stopped: "stopped" }[job.state] || "failed"}`;
    const stop = running ? h("button", { class: "ghost", type: "button", id: "job-stop", text: job.stopping ? "Stopping…" : "Stop",
      disabled: !!job.stopping, title: "Stop at the next step; what is finished is kept", onclick: () => stopJob(job.id) }) : null;
    fill(box,
      h("div", { class: "phase" }, h("span", { text: label }), h("span", { class: "muted", text: counter }), stop),
      bar,
      job.state === "done" ? h("div", { class: "muted", text: job.summary }) : null,
      job.state === "failed" ? h("div", { class: "err" }, job.error, job.hint ? h("div", { class: "muted", text: job.hint }) : null) : null,
      job.state === "stopped" ? h("div", { class: "muted" }, job.error, job.hint ? h("div", { text: job.hint }) : null) : null,
      job.log && job.log.length ? h("div", { class: "log", text: job.log.join("\n") }) : null);
    if (running) {
      $("#top-job-text").textContent = `${job.kind} ${frac != null ? `${Math.round(frac * 100)}%` : "…"}`;
      $("#top-job-bar").style.width = `${(frac ?? 0) * 100}%`;
    }
  }

  async function startJob(kind) {
    if (kind === "train" && !window.confirm("Train a model on this library? This takes from minutes to hours; "
        + "the page stays usable, and Stop ends it keeping its finished epochs.")) return;
    try {
      S.job = await api(`/api/jobs/${kind}`, { method: "POST", body: {} });
      renderJob();
      setTimeout(refreshStatus, 300);
    } catch (e) { fail(e); }
  }

  async function stopJob(id) {
    try {
      const job = await api(`/api/jobs/${id}/stop`, { method: "POST", body: {} });
      if (S.job && S.job.id === id && S.job.state === "running") S.job = job;   // unless a poll saw it end
      renderJob();
    } catch (e) {
      if (e.status !== 409) { fail(e); return; }
      toast(e.message, null, "info");   // it ended meanwhile: the next status says how
      refreshStatus();
    }
  }

  async function loadFailures() {
    S.failuresFor = S.status.revision;
    const card = $("#failures-card");
    let items;
    try { items = await api("/api/failures"); } catch (e) { fail(e); return; }
    const failed = items.filter((f) => !f.analysed), damaged = items.filter((f) => f.analysed);
    const list = (rows) => h("ul", { class: "failures" }, ...rows.slice(0, 500).map((f) => h("li", {}, h("div", { class: "p", text: f.path }), h("div", { class: "r", text: f.reason || "unknown reason" }))));
    fill(card, h("div", { class: "card-title" }, "Failures ", h("span", { class: "muted", text: failed.length ? `${failed.length} files could not be analysed` : "none" })),
      failed.length ? list(failed) : h("div", { class: "muted", text: "Every file was analysed." }),
      damaged.length ? [h("div", { class: "card-title" }, "Damaged ", h("span", { class: "muted", text: `${damaged.length} files analysed, passing over what could not be read` })), list(damaged)] : null);
  }

  // -- the map --------------------------------------------------------------------------------------------
  const M = { ids: null, x: null, y: null, view: null, index: new Map(), colour: [], k: 1, tx: 0, ty: 0, w: 0, h: 0,
    sx: null, sy: null, grid: new Map(), hover: -1, drag: null, by: "artist", info: null };
  window.reformMap = M;

  async function loadMap() {
    const overlay = $("#map-empty");
    const st = S.status;
    if (!st || !st.embeddings.songs) {
      M.ids = null;
      overlay.hidden = false;
      $(".map-hint").hidden = true;
      fill(overlay, ...noEmbeddingsMessage().map((x, i) => (i === 0 ? h("b", {}, x) : x)));
      $("#map-info").textContent = "";
      drawMap();
      return;
    }
    try {
      const data = await api("/api/map");
      const firstLoad = !M.ids || M.model !== data.model;
      M.ids = data.ids; M.x = data.x; M.y = data.y; M.model = data.model; M.view = data.view;
      M.index = new Map(M.ids.map((id, i) => [id, i]));
      S.mapModel = `${st.embeddings.model}:${st.embeddings.songs}`;
      overlay.hidden = true;
      $(".map-hint").hidden = false;
      const share = data.explained.reduce((a, b) => a + b, 0);
      const info = $("#map-info");
      info.textContent = `${plural(M.ids.length, "song")} · PCA`;
      info.title = `the two axes show ${Math.round(share * 100)}% of the variance of the embeddings`;
      colourMap();
      if (firstLoad) resetView();
      drawMap();
    } catch (e) {
      overlay.hidden = false;
      fill(overlay, h("b", { text: e.message }), e.hint ? h("div", { text: e.hint }) : null);
    }
  }

  function colourMap() {
    if (!M.ids) return;
    const key = M.by;
    const counts = new Map();
    const cat = M.ids.map((id) => { const s = S.byId.get(id); const c = (s && s[key]) || ""; counts.set(c, (counts.get(c) || 0) + 1); return c; });
    const ranked = [...counts.entries()].filter(([c]) => c).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const colourOf = new Map(ranked.map(([c], i) => [c, i < PALETTE.length ? PALETTE[i] : PALETTE[hashOf(c) % PALETTE.length]]));
    M.colour = cat.map((c) => (c ? colourOf.get(c) : NONE_COLOUR));
    M.order = M.ids.map((_, i) => i).sort((a, b) => (M.colour[a] < M.colour[b] ? -1 : M.colour[a] > M.colour[b] ? 1 : 0));
    // the name in an element of its own: the dot's flex box cannot cut a bare text with an ellipsis
    const name = (text) => h("span", { class: "name", text });
    const shown = ranked.slice(0, 10).map(([c, n]) => h("span", { title: `${c}: ${plural(n, "song")}` }, legendDot(colourOf.get(c)), name(c)));
    if (ranked.length > 10) shown.push(h("span", { class: "muted", text: `+${ranked.length - 10} more` }));
    if (counts.get("")) shown.push(h("span", {}, legendDot(NONE_COLOUR), name(`no ${key}`)));
    fill($("#legend"), ...shown);
  }

  function legendDot(colour) { const i = h("i"); i.style.background = colour; return i; }

  function resetView() { M.k = 1; M.tx = 0; M.ty = 0; }

  function resizeMap() {
    const canvas = $("#map"), wrap = $("#map-wrap");
    const dpr = window.devicePixelRatio || 1;
    M.w = wrap.clientWidth; M.h = wrap.clientHeight;
    canvas.width = Math.round(M.w * dpr); canvas.height = Math.round(M.h * dpr);  // clears it
    canvas.dataset.points = "0";
    drawMap();
  }

  function project() {
    // The server's view box (the bulk of the songs) is stretched to fill the canvas (the map
    // shows neighbourhoods, not distances); the few songs outside it are pinned to its edge,
    // half-way into the padding; then the user's zoom and pan apply.
    const n = M.ids.length, pad = 34;
    const [x0, x1] = M.view.x, [y0, y1] = M.view.y;
    const sx = (M.w - 2 * pad) / ((x1 - x0) || 1), sy = (M.h - 2 * pad) / ((y1 - y0) || 1);
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const ex = (pad / 2) / sx, ey = (pad / 2) / sy;
    M.sx = new Float32Array(n); M.sy = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const x = Math.min(Math.max(M.x[i], x0 - ex), x1 + ex), y = Math.min(Math.max(M.y[i], y0 - ey), y1 + ey);
      M.sx[i] = (M.w / 2 + (x - cx) * sx) * M.k + M.tx;
      M.sy[i] = (M.h / 2 - (y - cy) * sy) * M.k + M.ty;
    }
    M.grid = new Map();
    for (let i = 0; i < n; i++) {
      const key = `${Math.floor(M.sx[i] / 16)},${Math.floor(M.sy[i] / 16)}`;
      if (!M.grid.has(key)) M.grid.set(key, []);
      M.grid.get(key).push(i);
    }
  }

  let drawQueued = false;
  function drawMap() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; paintMap(); });
  }

  function paintMap() {
    const canvas = $("#map");
    const ctx = canvas.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, M.w, M.h);
    if (!M.ids || !M.w) { canvas.dataset.points = "0"; return; }
    project();
    const n = M.ids.length;
    const r = Math.max(1.6, Math.min(5, 7 - Math.log10(n + 1) * 1.45)) * Math.sqrt(Math.min(M.k, 6));
    const focus = S.current != null || S.playlist.length > 0;
    ctx.globalAlpha = focus ? 0.55 : 0.9;
    let colour = null;
    for (const i of M.order) {
      if (M.colour[i] !== colour) { colour = M.colour[i]; ctx.fillStyle = colour; }
      ctx.beginPath(); ctx.arc(M.sx[i], M.sy[i], r, 0, 6.2832); ctx.fill();
    }
    ctx.globalAlpha = 1;
    // the playlist as a path, in its order, when the mix is shown
    if (S.tab === "mix" && S.playlist.length) {
      const pts = S.playlist.map((s) => M.index.get(s.id)).filter((i) => i != null);
      ctx.strokeStyle = "rgba(187, 154, 247, .75)"; ctx.lineWidth = 1.5; ctx.setLineDash([4, 3]);
      ctx.beginPath();
      pts.forEach((i, j) => (j ? ctx.lineTo(M.sx[i], M.sy[i]) : ctx.moveTo(M.sx[i], M.sy[i])));
      ctx.stroke(); ctx.setLineDash([]);
      for (const i of pts) ring(ctx, i, r + 2.5, "#bb9af7", 1.5);
    }
    for (const id of S.seeds) { const i = M.index.get(id); if (i != null) diamond(ctx, i, r + 4, "#bb9af7"); }
    // the current song and its recommendations
    const cur = S.current != null ? M.index.get(S.current) : undefined;
    if (cur != null) {
      ctx.strokeStyle = "rgba(122, 162, 247, .45)"; ctx.lineWidth = 1;
      for (const s of S.similar) {
        const i = M.index.get(s.id);
        if (i == null) continue;
        ctx.beginPath(); ctx.moveTo(M.sx[cur], M.sy[cur]); ctx.lineTo(M.sx[i], M.sy[i]); ctx.stroke();
      }
    }
    for (const s of S.similar) {
      const i = M.index.get(s.id);
      if (i == null) continue;
      ctx.fillStyle = M.colour[i];
      ctx.beginPath(); ctx.arc(M.sx[i], M.sy[i], r + 1.5, 0, 6.2832); ctx.fill();
      ring(ctx, i, r + 3, "#e6e9f0", 1.5);
    }
    if (cur != null) {
      ctx.fillStyle = "rgba(255, 184, 107, .18)";
      ctx.beginPath(); ctx.arc(M.sx[cur], M.sy[cur], r + 13, 0, 6.2832); ctx.fill();
      ctx.fillStyle = "#ffb86b";
      ctx.beginPath(); ctx.arc(M.sx[cur], M.sy[cur], r + 3, 0, 6.2832); ctx.fill();
      ring(ctx, cur, r + 6, "#ffb86b", 2);
    }
    if (M.hover >= 0 && M.hover < n) ring(ctx, M.hover, r + 5, "#ffffff", 2);
    canvas.dataset.points = String(n);
  }

  function ring(ctx, i, radius, colour, width) {
    ctx.strokeStyle = colour; ctx.lineWidth = width;
    ctx.beginPath(); ctx.arc(M.sx[i], M.sy[i], radius, 0, 6.2832); ctx.stroke();
  }

  function diamond(ctx, i, size, colour) {
    const x = M.sx[i], y = M.sy[i];
    ctx.strokeStyle = colour; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(x, y - size); ctx.lineTo(x + size, y); ctx.lineTo(x, y + size); ctx.lineTo(x - size, y); ctx.closePath(); ctx.stroke();
  }

  function nearest(px, py) {
    if (!M.sx) return -1;
    let best = -1, bestD = 12 * 12;
    const gx = Math.floor(px / 16), gy = Math.floor(py / 16);
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const i of M.grid.get(`${gx + dx},${gy + dy}`) || []) {
          const d = (M.sx[i] - px) ** 2 + (M.sy[i] - py) ** 2;
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  function showTooltip(i, px, py) {
    const tip = $("#tooltip");
    if (i < 0) { tip.hidden = true; return; }
    const s = S.byId.get(M.ids[i]);
    if (!s) { tip.hidden = true; return; }
    const rec = S.similar.findIndex((x) => x.id === s.id);
    fill(tip, h("b", { text: s.title }), h("span", { text: byline(s) }),
      s.genre ? h("span", { text: s.genre }) : null,
      s.id === S.current ? h("em", { text: "playing" }) : rec >= 0 ? h("em", { text: `#${rec + 1} similar · ${S.similar[rec].score.toFixed(3)}` }) : null);
    tip.hidden = false;
    const w = tip.offsetWidth, hgt = tip.offsetHeight;
    tip.style.left = `${Math.min(px + 14, M.w - w - 8)}px`;
    tip.style.top = `${py + 14 + hgt > M.h ? py - hgt - 10 : py + 14}px`;
  }

  function bindMap() {
    const canvas = $("#map");
    new ResizeObserver(resizeMap).observe($("#map-wrap"));
    canvas.addEventListener("mousemove", (ev) => {
      if (M.drag) {
        const dx = ev.offsetX - M.drag.x, dy = ev.offsetY - M.drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) M.drag.moved = true;
        if (M.drag.moved) { M.tx = M.drag.tx + dx; M.ty = M.drag.ty + dy; canvas.classList.add("grabbing"); showTooltip(-1); drawMap(); }
        return;
      }
      const i = nearest(ev.offsetX, ev.offsetY);
      canvas.classList.toggle("pointing", i >= 0);
      if (i !== M.hover) { M.hover = i; drawMap(); }
      showTooltip(i, ev.offsetX, ev.offsetY);
    });
    canvas.addEventListener("mouseleave", () => { M.hover = -1; M.drag = null; showTooltip(-1); drawMap(); });
    canvas.addEventListener("mousedown", (ev) => { M.drag = { x: ev.offsetX, y: ev.offsetY, tx: M.tx, ty: M.ty, moved: false }; });
    canvas.addEventListener("mouseup", (ev) => {
      const drag = M.drag;
      M.drag = null;
      canvas.classList.remove("grabbing");
      if (drag && !drag.moved) {
        const i = nearest(ev.offsetX, ev.offsetY);
        if (i >= 0) select(M.ids[i], { from: "map" });
      }
    });
    canvas.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const f = Math.exp(-ev.deltaY * 0.0015);
      const k = Math.max(0.5, Math.min(60, M.k * f));
      const g = k / M.k;
      M.tx = ev.offsetX - (ev.offsetX - M.tx) * g; M.ty = ev.offsetY - (ev.offsetY - M.ty) * g; M.k = k;
      drawMap();
    }, { passive: false });
    canvas.addEventListener("dblclick", () => { resetView(); drawMap(); });
    $("#colour-by").addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      M.by = b.dataset.by;
      $$("#colour-by button").forEach((x) => x.classList.toggle("on", x === b));
      colourMap(); drawMap();
    });
  }

  // -- wiring ------------------------------------------------------------------------------------------------
  function showTab(name) {
    S.tab = name;
    $$(".tabs button").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
    for (const t of ["similar", "mix", "status"]) $(`#tab-${t}`).hidden = t !== name;
    if (name === "status" && S.status && S.failuresFor !== S.status.revision) loadFailures();
    drawMap();
  }

  function bind() {
    const search = $("#search");
    let typing = null;
    search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { S.query = search.value; applyView(); }, S.songs.length > 20000 ? 120 : 0); });
    search.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && S.view.length) { S.query = search.value; applyView(); select(S.view[0].id); }
      if (ev.key === "ArrowDown") { ev.preventDefault(); $("#tbody").focus(); moveCursor(S.cursor < 0 ? 0 : S.cursor); }
      if (ev.key === "Escape") { search.value = ""; S.query = ""; applyView(); }
    });
    document.addEventListener("keydown", (ev) => {
      const active = document.activeElement;   // a checkbox or a button takes no letters: the keys work there
      const typingInField = ["SELECT", "TEXTAREA"].includes(active.tagName)
        || (active.tagName === "INPUT" && !["checkbox", "radio", "button", "range"].includes(active.type));
      if (ev.key === "/" && !typingInField) { ev.preventDefault(); search.focus(); search.select(); }
      // Space or k: play / pause, except where Space already means something (a button, the player)
      const own = ev.target.closest && ev.target.closest("button, a, audio, select, input, textarea");
      const mods = ev.ctrlKey || ev.metaKey || ev.altKey;
      if ((ev.key === " " || ev.key === "k") && !own && !mods) { ev.preventDefault(); togglePlay(); }
      // n and p: next and previous song, wherever the focus is but in a text field
      if ((ev.key === "n" || ev.key === "p") && !typingInField && !mods) { ev.preventDefault(); if (ev.key === "n") playNext(); else playPrevious(); }
    });
    window.addEventListener("hashchange", openFromAddress);
    // back on the page (after a `reform scan` in a terminal, say): the library is checked at once
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refreshStatus(); });
    $("#filter-genre").addEventListener("change", (ev) => { S.genre = ev.target.value; applyView(); });
    $(".thead").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-sort]");
      if (!b) return;
      const key = b.dataset.sort;
      S.sort = { key, desc: S.sort.key === key ? !S.sort.desc : false };
      applyView();
    });
    const body = $("#tbody");
    body.addEventListener("scroll", () => requestAnimationFrame(renderRows));
    new ResizeObserver(() => renderRows()).observe(body);
    body.addEventListener("click", (ev) => {
      const add = ev.target.closest("[data-add]");
      if (add) { toggleSeed(Number(add.dataset.add)); return; }
      const row = ev.target.closest(".row");
      if (row) select(Number(row.dataset.id), { from: "table" });
    });
    body.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") { ev.preventDefault(); moveCursor(S.cursor + (ev.key === "ArrowDown" ? 1 : -1)); }
      if (ev.key === "Enter" && S.cursor >= 0) select(S.view[S.cursor].id, { from: "table" });
      if (ev.key === "+" && S.cursor >= 0) toggleSeed(S.view[S.cursor].id);
    });
    $("#similar-list").addEventListener("click", (ev) => {
      const add = ev.target.closest("[data-add]");
      if (add) { toggleSeed(Number(add.dataset.add)); return; }
      const li = ev.target.closest("li");
      if (li) select(Number(li.dataset.id), { from: "similar" });
    });
    onEnter($("#similar-list"), (li) => select(Number(li.dataset.id), { from: "similar" }));
    $("#other-artists").addEventListener("change", () => { if (S.current != null) loadSimilar(); });
    $("#now-add").addEventListener("click", () => { if (S.current != null) toggleSeed(S.current); });
    $("#prev").addEventListener("click", playPrevious);
    $("#next").addEventListener("click", playNext);
    if ("mediaSession" in navigator) {   // a keyboard's media keys, a phone's lock screen
      for (const [action, handler] of [["previoustrack", playPrevious], ["nexttrack", playNext]]) {
        try { navigator.mediaSession.setActionHandler(action, handler); } catch (e) { /* not offered here */ }
      }
    }
    $(".tabs").addEventListener("click", (ev) => { const b = ev.target.closest("button[data-tab]"); if (b) showTab(b.dataset.tab); });
    $("#mix-make").addEventListener("click", makePlaylist);
    $("#mix-clear").addEventListener("click", () => { S.seeds = []; renderSeeds(); renderRows(); renderSimilar(); updateAddButtons(); drawMap(); });
    $("#playlist-play").addEventListener("click", () => { if (S.playlist.length) playFrom(0); });
    $$("[data-job]").forEach((b) => b.addEventListener("click", () => startJob(b.dataset.job)));
    const player = $("#player");
    player.addEventListener("error", playerFailed);
    player.addEventListener("ended", songEnded);
    player.addEventListener("play", () => $("#cover").classList.add("playing"));
    for (const e of ["pause", "ended", "emptied"]) player.addEventListener(e, () => $("#cover").classList.remove("playing"));
    bindPlaylist();
    bindMap();
  }

  function onEnter(list, play) {
    // Enter on a focused item of the list plays it, as in the library table
    list.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" || ev.target.tagName !== "LI") return;
      ev.preventDefault();
      play(ev.target);
    });
  }

  function togglePlay() {
    const player = $("#player");
    if (!player.getAttribute("src")) return;
    if (player.paused) player.play().catch(() => {}); else player.pause();
  }

  function moveCursor(i) {
    if (!S.view.length) return;
    S.cursor = Math.max(0, Math.min(S.view.length - 1, i));
    const body = $("#tbody");
    const top = S.cursor * ROW;
    if (top < body.scrollTop) body.scrollTop = top;
    else if (top + ROW > body.scrollTop + body.clientHeight) body.scrollTop = top + ROW - body.clientHeight;
    renderRows();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    bind();
    renderSeeds();
    renderPlaylist();
    await poll();
  });
})();

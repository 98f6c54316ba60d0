// The conversation page: the audio and its transcript kept in step (click a turn to seek there; the
// playing turn is highlighted as the audio plays), evidence turns, the review form (confirm / override per
// item, posted with the page's version; a 409 reloads instead of overwriting), appeals and rulings.
// The appeals page reuses the rulings part.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const conv = document.getElementById("conv");
  const convId = conv ? conv.dataset.id : null;
  const version = conv ? parseInt(conv.dataset.version, 10) : null;

  // -- audio ⇄ transcript ------------------------------------------------------------------------------
  const audio = document.getElementById("player");
  const turns = Array.from(document.querySelectorAll("#transcript .turn"));
  const timed = turns.filter((el) => el.dataset.start !== "" && el.dataset.start !== undefined)
    .map((el) => ({ el, start: parseFloat(el.dataset.start), end: parseFloat(el.dataset.end) }))
    .sort((a, b) => a.start - b.start);
  let playing = null;

  function seek(start) {
    if (!audio || Number.isNaN(start)) return;
    audio.currentTime = start;
    highlight(start);
  }

  // The turn under time t: the last one started at or before t, while t is inside it (gaps between turns
  // highlight nothing, so the listener sees when nobody speaks).
  function turnAt(t) {
    let lo = 0, hi = timed.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (timed[mid].start <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found < 0) return null;
    const turn = timed[found];
    return t < (Number.isNaN(turn.end) ? Infinity : turn.end) ? turn.el : null;
  }

  function highlight(t) {
    const el = turnAt(t);
    if (el === playing) return;
    if (playing) playing.classList.remove("playing");
    playing = el;
    if (el) {
      el.classList.add("playing");
      const box = document.getElementById("transcript");
      const top = el.offsetTop - box.offsetTop;
      if (top < box.scrollTop || top + el.offsetHeight > box.scrollTop + box.clientHeight) {
        box.scrollTo({ top: Math.max(0, top - box.clientHeight / 3) });
      }
    }
  }

  if (audio) {
    timed.forEach(({ el, start }) => el.addEventListener("click", (ev) => {
      if (ev.target.closest("a")) return;
      seek(start);
    }));
    // timeupdate comes about four times a second; while playing, each frame also checks, so the highlight
    // changes when the speaker does, not up to a quarter second later
    const follow = () => {
      highlight(audio.currentTime);
      if (!audio.paused && !audio.ended) requestAnimationFrame(follow);
    };
    audio.addEventListener("play", () => requestAnimationFrame(follow));
    for (const ev of ["timeupdate", "seeked", "pause"]) audio.addEventListener(ev, () => highlight(audio.currentTime));
  }

  // Evidence chips: show the turn (and, for a call, play from it).
  document.querySelectorAll(".turn-ref").forEach((a) => a.addEventListener("click", (ev) => {
    const el = document.getElementById("turn-" + a.dataset.turn);
    if (!el) return;
    ev.preventDefault();
    document.querySelectorAll(".evidence-focus").forEach((x) => x.classList.remove("evidence-focus"));
    el.classList.add("evidence-focus");
    el.scrollIntoView({ block: "center", behavior: "smooth" });
    if (audio && el.dataset.start) seek(parseFloat(el.dataset.start));
  }));

  // -- reading a value control ---------------------------------------------------------------------------
  function readValue(control) {
    if (!control) return undefined;
    if (control.dataset.kind === "turns") {
      const text = control.value.trim();
      if (!text) return [];
      const parts = text.split(/[\s,，、]+/).filter(Boolean);
      const nums = parts.map((p) => Number(p.replace(/^#/, "")));
      if (nums.some((n) => !Number.isInteger(n) || n < 0)) throw new Error("轮次须为非负整数，如 3, 6");
      return Array.from(new Set(nums)).sort((a, b) => a - b);
    }
    return JSON.parse(control.value);
  }
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  // -- review ----------------------------------------------------------------------------------------------
  const card = document.getElementById("scorecard");
  const submit = document.getElementById("submit-review");
  const submitNext = document.getElementById("submit-next");
  const stagedCount = document.getElementById("staged-count");
  const mode = new Map(); // item -> "confirm" | "override"

  function refresh() {
    const n = mode.size;
    if (stagedCount) stagedCount.textContent = n ? `已选 ${n} 项` : "未选择";
    if (submit) submit.disabled = n === 0;
    if (submitNext) submitNext.disabled = n === 0;
  }

  function setMode(row, m) {
    const item = row.dataset.item;
    const edit = row.querySelector(".edit:not(.appeal-form)");
    if (mode.get(item) === m) m = null; // a second click takes it back
    if (m) mode.set(item, m); else mode.delete(item);
    row.classList.toggle("staged", !!m);
    row.querySelector(".confirm")?.classList.toggle("primary", m === "confirm");
    row.querySelector(".override")?.classList.toggle("primary", m === "override");
    if (edit) edit.classList.toggle("hidden", m !== "override");
    if (m === "override") edit?.querySelector("select, input")?.focus();
    refresh();
  }

  function collect() {
    const decisions = [];
    for (const [item, m] of mode) {
      const row = card.querySelector(`tr[data-item="${CSS.escape(item)}"]`);
      const machine = JSON.parse(row.dataset.machine);
      if (m === "confirm") { decisions.push({ item, value: machine, reason: "" }); continue; }
      const edit = row.querySelector(".edit:not(.appeal-form)");
      const value = readValue(edit.querySelector("[name=value]"));
      const reason = edit.querySelector("[name=reason]").value.trim();
      if (!same(value, machine) && !reason) {
        edit.querySelector("[name=reason]").focus();
        throw new Error(`「${row.querySelector(".item").textContent}」改判须填写原因`);
      }
      decisions.push({ item, value, reason });
    }
    return decisions;
  }

  async function sendReview(thenNext) {
    let decisions;
    try { decisions = collect(); } catch (e) { Zj.show(e.message, "error"); return; }
    submit.disabled = true; submitNext.disabled = true;
    const before = document.getElementById("score").textContent.trim();
    const r = await Zj.api("POST", `/api/conversations/${encodeURIComponent(convId)}/review`, { version, decisions });
    if (r.status === 200) {
      const after = r.data && typeof r.data.score === "number" ? r.data.score.toFixed(1) : "?";
      const done = `已提交 ${decisions.length} 项复核，得分 ${before} → ${after}`;
      if (thenNext) {
        const next = await Zj.api("POST", "/api/queue/next");
        if (next.status === 200 && next.data && next.data.id) {
          Zj.flashNext(done + `；已领取 ${next.data.id}`, "ok");
          location.href = "/conversations/" + encodeURIComponent(next.data.id);
          return;
        }
        Zj.flashNext(done + (next.status === 204 ? "；队列中已没有待领取的会话" : ""), "ok");
      } else {
        Zj.flashNext(done, "ok");
      }
      location.reload();
      return;
    }
    if (r.status === 409) {
      Zj.flashNext("此会话已被他人修改，已重新载入。请核对最新结果后再提交。", "error");
      location.reload();
      return;
    }
    refresh();
    Zj.show(r.status === 403 ? "你没有复核此会话的权限" : "提交失败：" + (Zj.detail(r.data) || r.status), "error");
  }

  if (card) {
    card.querySelectorAll("tr[data-item]").forEach((row) => {
      row.querySelector(".confirm")?.addEventListener("click", () => setMode(row, "confirm"));
      row.querySelector(".override")?.addEventListener("click", () => setMode(row, "override"));
      row.querySelector(".appeal-btn")?.addEventListener("click", () => {
        const f = row.querySelector(".appeal-form");
        f.classList.toggle("hidden");
        f.querySelector("[name=reason]").focus();
      });
      row.querySelector(".appeal-submit")?.addEventListener("click", () => fileAppeal(row));
    });
  }
  submit?.addEventListener("click", () => sendReview(false));
  submitNext?.addEventListener("click", () => sendReview(true));
  document.getElementById("confirm-all")?.addEventListener("click", () => {
    card.querySelectorAll("tr[data-item]").forEach((row) => { if (!mode.has(row.dataset.item)) setMode(row, "confirm"); });
  });

  // -- appeals ---------------------------------------------------------------------------------------------
  async function fileAppeal(row) {
    const input = row.querySelector(".appeal-form [name=reason]");
    const reason = input.value.trim();
    if (!reason) { input.focus(); Zj.show("请填写申诉理由", "error"); return; }
    const r = await Zj.api("POST", `/api/conversations/${encodeURIComponent(convId)}/appeals`,
      { item: row.dataset.item, reason });
    if (r.status === 201 || r.status === 200) {
      Zj.flashNext("申诉已提交，等待质检主管裁定", "ok");
      location.reload();
      return;
    }
    const why = r.status === 409 ? "该项已有处理中的申诉" : r.status === 422 ? "无法申诉：" + Zj.detail(r.data)
      : r.status === 403 ? "只能申诉自己的会话" : "申诉失败：" + (Zj.detail(r.data) || r.status);
    Zj.show(why, "error");
  }

  document.querySelectorAll(".rule[data-appeal-id]").forEach((box) => {
    box.querySelector(".rule-submit").addEventListener("click", async () => {
      const decision = box.querySelector("[name=decision]").value;
      const reason = box.querySelector("[name=reason]").value.trim();
      if (!reason) { box.querySelector("[name=reason]").focus(); Zj.show("请填写裁定理由", "error"); return; }
      let value = null;
      if (decision === "overturned") {
        try { value = readValue(box.querySelector("[name=value]")); } catch (e) { Zj.show(e.message, "error"); return; }
      }
      const r = await Zj.api("POST", `/api/appeals/${box.dataset.appealId}/ruling`, { decision, value, reason });
      if (r.status === 200 || r.status === 201) {
        Zj.flashNext(decision === "overturned" ? "已改判，得分已按评分卡重新计算" : "已维持原判", "ok");
        location.reload();
        return;
      }
      Zj.show(r.status === 409 ? "该申诉已被裁定，已刷新" : r.status === 403 ? "只有质检主管可以裁定申诉"
        : "裁定失败：" + (Zj.detail(r.data) || r.status), "error");
      if (r.status === 409) setTimeout(() => location.reload(), 800);
    });
    // the value control only matters when overturning
    const sel = box.querySelector("[name=decision]");
    const ctl = box.querySelector("[name=value]");
    const sync = () => { if (ctl) ctl.disabled = sel.value !== "overturned"; };
    sel.addEventListener("change", sync);
    sync();
  });

  refresh();
});

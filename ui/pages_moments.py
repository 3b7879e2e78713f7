"""The Video moments page: moments that match a query, grouped by video, each playable.

Every video shows its best moments as thumbnails with start–end times and the signal that
found them (seen in the frames, or said in the subtitles); the player beside them starts at the
chosen moment (the API serves the file with HTTP range requests, so the browser seeks without
downloading the whole video). Under the player, the saliency timeline charts how well each
instant matches, with the moments shaded; each moment has a Play button that seeks there and
a link that downloads it as its own MP4 clip.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ui import components
from ui import format as fmt
from ui.client import ApiClient, ApiError, MomentHit, Saliency, SearchOptions, VideoGroup

LIMIT = 30  # moments (or videos) per query; moments are grouped by video on the page
TIMELINES = 3  # videos whose saliency timeline is shown without asking (one API call each)
SIGNAL_LABELS = {"both": "Seen or said", "visual": "Seen", "speech": "Said"}
SIGNAL_HELP = (
    "**Seen** matches the query against the video frames, **Said** against the subtitles and "
    "transcripts (sidecar .srt/.vtt files or subtitle streams), **Seen or said** fuses both."
)
POOLING_HELP = (
    "**Top-k** scores each window by the mean of its k best frames, so a short matching moment "
    "is not diluted by unrelated frames. **Mean** compares the query with each window's averaged "
    "frame embedding (a strong, parameter-free baseline)."
)


def render() -> None:
    api = components.client()
    st.title("Video moments", anchor=False)
    st.caption("Find the moments in your videos that match a description, and jump straight to them.")
    query = st.text_input(
        "Describe the moment",
        key="moments.query",
        placeholder="a red circle",
        icon=":material/movie:",
        label_visibility="collapsed",
    )
    options = _controls()
    if not (query or "").strip():
        components.empty_state(
            "Search inside videos",
            "Describe what happens, e.g. `a yellow star`; each video lists its best moments with start and end times.",
            icon=":material/movie:",
        )
        return
    found = _search(api, query.strip(), options)
    if found is None:
        return
    videos, took_ms = found
    if not videos:
        components.empty_state(
            "No moments found",
            "No indexed video matched. Try other words, or index some videos on the Ingest page.",
            icon=":material/search_off:",
        )
        return
    st.caption(f"{len(videos)} videos" + (f" · {took_ms:.0f} ms" if took_ms is not None else ""))
    for rank, video in enumerate(videos, start=1):
        _video(api, rank, video, query.strip(), options)


def _controls() -> SearchOptions:
    with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
        target = st.segmented_control(
            "Show",
            ["moments", "videos"],
            default="moments",
            key="moments.target",
            required=True,
            format_func={"moments": "Moments", "videos": "Whole videos"}.get,
        )
        pooling = st.segmented_control(
            "Pooling",
            ["topk", "mean"],
            default="topk",
            key="moments.pooling",
            required=True,
            format_func={"topk": "Top-k frames", "mean": "Mean"}.get,
            help=POOLING_HELP,
        )
        k = st.number_input(
            "k", min_value=1, max_value=64, value=3, step=1, key="moments.k", disabled=pooling != "topk", width=110
        )
        per_video = st.number_input(
            "Moments per video", min_value=1, max_value=10, value=3, step=1, key="moments.per_video", width=150
        )
        signal = st.segmented_control(
            "Found by",
            list(SIGNAL_LABELS),
            default="both",
            key="moments.signal",
            required=True,
            format_func=SIGNAL_LABELS.get,
            help=SIGNAL_HELP,
        )
    return SearchOptions(
        target=target or "moments",
        pooling=pooling or "topk",
        k=int(k) if pooling == "topk" else None,
        per_video=int(per_video),
        limit=LIMIT,
        signal=signal or "both",
    )


def _search(api: ApiClient, query: str, options: SearchOptions) -> tuple[tuple[VideoGroup, ...], float | None] | None:
    try:
        with st.spinner("Searching videos…"):
            return api.videos(query, options)
    except ApiError as error:
        components.show_error(error)
        return None


def _video(api: ApiClient, rank: int, video: VideoGroup, query: str, options: SearchOptions) -> None:
    """One video: its moments as a row of cards, and a player at the selected moment."""
    with st.container(border=True, key=f"moments_{rank}"):
        title = video.name or video.video_id[:8]
        duration = f" · {fmt.timestamp(video.duration)} long" if video.duration else ""
        st.markdown(f"**{rank}. {title}** &nbsp; {components.score_html(video.score, 'video')}{duration}", unsafe_allow_html=True)
        if not video.moments:
            if video.file_url:
                st.video(video.file_url)
            return
        chosen = _chosen_moment(video)
        player, moments = st.columns([3, 2], gap="medium")
        with moments:
            grid = st.grid("auto", min_column_width=150, gap="small")
            for index, moment in enumerate(video.moments):
                with grid.cell():
                    _moment_card(api, video, index, moment, selected=moment is chosen)
        with player:
            if video.file_url:
                st.video(video.file_url, start_time=int(chosen.start), end_time=int(chosen.end + 0.999) or None)
            best = f" · best match at {fmt.timestamp(chosen.best_t)}" if chosen.best_t is not None else ""
            st.caption(f"Playing {fmt.time_range(chosen.start, chosen.end)}{best}")
            if st.toggle("Timeline", value=rank <= TIMELINES, key=f"moments.timeline.{video.video_id}"):
                _timeline(api, video, query, options)


def _chosen_moment(video: VideoGroup) -> MomentHit:
    index = int(st.session_state.get(_choice_key(video), 0))
    return video.moments[index] if 0 <= index < len(video.moments) else video.moments[0]


def _timeline(api: ApiClient, video: VideoGroup, query: str, options: SearchOptions) -> None:
    """The saliency curve of the video for the query, its moments shaded."""
    try:
        found = api.saliency(video.video_id, query, options.signal, options.per_video)
    except ApiError as error:
        components.show_error(error)
        return
    if not found.curve:
        st.caption("No timeline: nothing of this video was scored.")
        return
    st.altair_chart(timeline_chart(found), use_container_width=True)


def timeline_chart(found: Saliency) -> alt.LayerChart | alt.FacetChart:
    """A line of score over time, coloured by signal, over grey bands for the moments."""
    curve = pd.DataFrame(found.curve, columns=["t", "score", "signal"])
    curve["signal"] = curve["signal"].map({"visual": "seen", "speech": "said"}).fillna(curve["signal"])
    line = (
        alt.Chart(curve)
        .mark_line(point=True)
        .encode(
            x=alt.X("t:Q", title="seconds"),
            y=alt.Y("score:Q", title="match"),
            color=alt.Color("signal:N", title="found by"),
            tooltip=["t", "score", "signal"],
        )
    )
    bands = pd.DataFrame([(m.start, m.end) for m in found.moments], columns=["start", "end"])
    shaded = alt.Chart(bands).mark_rect(opacity=0.15, color="grey").encode(x="start:Q", x2="end:Q")
    return alt.layer(shaded, line).properties(height=160)


def _moment_card(api: ApiClient, video: VideoGroup, index: int, moment: MomentHit, selected: bool) -> None:
    if moment.thumbnail_url:
        st.image(moment.thumbnail_url, width="stretch", alt=f"{video.name} at {fmt.timestamp(moment.start)}")
    st.markdown(
        f'<div class="mm-title">{fmt.time_range(moment.start, moment.end)}</div>{components.score_html(moment.score)}',
        unsafe_allow_html=True,
    )
    if moment.signal:
        st.caption({"visual": "seen", "speech": "said"}.get(moment.signal, moment.signal))
    st.button(
        "Playing" if selected else "Play",
        icon=":material/play_arrow:",
        key=f"{_choice_key(video)}.{index}",
        type="primary" if selected else "secondary",
        on_click=_choose,
        args=(video, index),
    )
    st.link_button("Clip", api.clip_url(video.video_id, moment.start, moment.end, moment.clip_url), icon=":material/download:")


def _choice_key(video: VideoGroup) -> str:
    return f"moments.play.{video.video_id}"


def _choose(video: VideoGroup, index: int) -> None:
    st.session_state[_choice_key(video)] = index


if __name__ == "__main__":
    render()

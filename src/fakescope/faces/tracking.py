"""Face tracks over the sampled frames of a video: which face is the video's main face, and how small a face
the next frames must be searched for (the tracked face search of ``fakescope prepare`` and ``detect``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from fakescope.errors import DataError
from fakescope.faces.detector import Face


def link_tracks(faces_per_frame: Sequence[Sequence[Face]], max_shift: float = 0.75,
                max_scale: float = 2.0) -> list[list[Face]]:
    """Give each face a track id linking it to the same face in the neighbouring sampled frames.

    A face joins the track whose last box is nearest, when the centre moved by
    less than ``max_shift`` box sizes and the size changed by less than
    ``max_scale`` times; otherwise it starts a track. Tracks are numbered by
    total face area over the video, so track 0 is the dominant face.
    """
    tracks: list[list[tuple[int, Face]]] = []
    for t, faces in enumerate(faces_per_frame):
        candidates = []
        for fi, face in enumerate(faces):
            size_f = math.sqrt(max(face.area, 1e-6))
            for ti, tr in enumerate(tracks):
                last_t, last = tr[-1]
                if last_t == t:
                    continue
                size_l = math.sqrt(max(last.area, 1e-6))
                ratio = max(size_f, size_l) / min(size_f, size_l)
                dist = math.dist(face.center, last.center) / max(size_f, size_l)
                if dist <= max_shift and ratio <= max_scale:
                    candidates.append((dist + (ratio - 1), fi, ti))
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for _, fi, ti in sorted(candidates):
            if fi not in assigned and ti not in used_tracks:
                assigned[fi] = ti
                used_tracks.add(ti)
        for fi, face in enumerate(faces):
            if fi in assigned:
                tracks[assigned[fi]].append((t, face))
            else:
                tracks.append([(t, face)])
    order = sorted(range(len(tracks)), key=lambda i: -sum(f.area for _, f in tracks[i]))
    out: list[list[Face]] = [[] for _ in faces_per_frame]
    for new_id, ti in enumerate(order):
        for t, face in tracks[ti]:
            out[t].append(replace(face, track=new_id))
    for faces in out:
        faces.sort(key=lambda f: f.track)
    return out


# Tracked face search (see track_face and fakescope.faces.pipeline.FacePipeline): after a video's first
# frame, faces smaller than 1 / TRACK_SCALE of the main face's smallest recent size are not searched for (the
# pyramid levels with smaller windows, the largest and costliest, are skipped), in whole frames. Such a
# face has under a ninth of the main face's area in a frame. A frame is searched in full again
# (search_again) when no face is found near the main face's last box, or when the face found there is
# under TRACK_GUARD times the smallest size searched for: the main face moved away, is missing or shrank,
# and windows that would give its box in a full search may be among those skipped (a final box can come
# from a window smaller than the face, so a face near the smallest size searched for can get another box).
TRACK_SCALE = 3.0
TRACK_GUARD = 2.5


@dataclass(frozen=True)
class Track:
    """The main face's last box, and how small a face to search for in a video's next frames (frame pixels)."""

    box: tuple[float, float, float, float]
    min_size: float


def _side(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def track_face(faces_per_frame: Sequence[Sequence[Face]], recent: int = 8, scale: float = TRACK_SCALE,
               history: int = 32) -> Track | None:
    """The main face's last box, and ``1 / scale`` of its smallest box in the ``recent`` frames.

    The main face is that of :func:`select_faces` over the last ``history``
    frames (a bound: a run over every frame of a long video calls this once
    per batch; where that face is missing, :func:`select_faces` gives the
    frame's largest). ``None`` (search in full) when the ``recent`` frames
    hold no face.
    """
    main = [faces[0].box for faces in select_faces(faces_per_frame[-max(history, recent):])[-recent:] if faces]
    return Track(main[-1], min(_side(b) for b in main) / scale) if main else None


def search_again(faces: Sequence[Face], track: Track, guard: float = TRACK_GUARD) -> bool:
    """Whether a frame searched as ``track`` says must be searched in full.

    Yes when no face found has its centre within one side of the main
    face's last box from that box's centre (the face moved far, or is
    missing), or when the largest of those is under ``guard`` times the
    smallest size searched for (it shrank). Other faces do not count.
    """
    cx, cy, reach = (track.box[0] + track.box[2]) / 2, (track.box[1] + track.box[3]) / 2, _side(track.box)
    near = [f for f in faces if math.dist(f.center, (cx, cy)) <= reach]
    return not near or _side(max(near, key=lambda f: f.area).box) < guard * track.min_size


def select_faces(faces_per_frame: Sequence[Sequence[Face]], mode: str = "largest") -> list[list[Face]]:
    """``largest``: one face per frame, the video's main face; ``all``: every face, with linked track ids.

    ``largest`` takes, in each frame, the face of the main track (the one
    with the largest total area over the sampled frames, see
    :func:`link_tracks`), and the frame's largest face where the main track
    has none (the main face was missed, or the tracks broke at a cut). A
    larger face that shows up in a few frames, such as a face in an inset
    picture of a news programme, so does not replace the speaker in those
    frames, as it would with the per-frame rule of DeepfakeBench.
    """
    if mode == "all":
        return link_tracks(faces_per_frame)
    if mode != "largest":
        raise DataError(f"face selection '{mode}': choose 'largest' or 'all'")
    out = []
    for faces in link_tracks(faces_per_frame):
        main = [f for f in faces if f.track == 0]
        if main or faces:
            out.append([replace(main[0] if main else max(faces, key=lambda f: f.area), track=0)])
        else:
            out.append([])
    return out

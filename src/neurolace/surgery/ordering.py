"""Insertion order: which thread goes where, and in what sequence, so threads never cross.

The model
---------
Each thread runs on the cortical surface in a straight line from its exit point on the implant
body to its insertion site. The N1's threads leave the body around its rim; here the ``n``
exit points are evenly spaced on a circle of ``exit_radius_um`` around ``implant_xy_um``
(default: the sites' centroid and 1 mm), or given explicitly.

*No crossing threads.* Threads are assigned to exit points by the matching of least total
length (``scipy.optimize.linear_sum_assignment`` on the distance matrix). Such a matching has
no two crossing segments: if thread a-b crossed thread c-d at a point X, the triangle
inequality gives ``|ad| + |cb| < |aX| + |Xb| + |cX| + |Xd| = |ab| + |cd|``, so swapping
the exits would make the matching shorter. This holds whatever the insertion order.

*Never come down on a laid thread.* Once inserted, a thread lies on the surface from its exit
to its site. If another site lies within ``thread_clearance_um`` of that line, the needle
would land on the laid thread, so that site must be inserted first: site ``a`` precedes site
``b`` when ``a`` is that close to ``b``'s thread. (A later thread lying over an already
inserted, anchored thread is harmless: two flexible polyimide films touching. Inserting
far-to-near would instead bring the needle down beside laid threads.) These constraints almost
never form a cycle; if they do, the order breaks it where it must and counts the constraints
left unmet.

*Short robot travel.* Within the constraints, a nearest-neighbour route from the robot's home
(the implant centre), improved by 2-opt moves (Croes 1958, Oper Res 6:791): reversing a stretch
of the route is accepted when it is shorter and no precedence constraint joins two sites inside
the stretch (reversal flips exactly those pairs). The route is open: it ends at the last site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError

__all__ = ["InsertionOrder", "DEFAULT_EXIT_RADIUS_UM", "order_insertions"]

#: Radius of the circle of thread exit points around the implant centre (a model choice).
DEFAULT_EXIT_RADIUS_UM = 1000.0
#: Most 2-opt improvements applied (each is an O(n^2) numpy step).
MAX_TWO_OPT_MOVES = 2000


@dataclass(frozen=True, eq=False)
class InsertionOrder:
    """The sequence of insertions and each thread's path.

    Attributes
    ----------
    order : ndarray of int, shape (n_sites,)
        Site indices in insertion sequence (``order[0]`` is inserted first).
    exit_xy_um : ndarray, shape (n_sites, 2)
        Exit point on the implant of the thread of each site (indexed by site).
    implant_xy_um : ndarray, shape (2,)
        Implant centre, the robot's home.
    travel_mm : float
        Robot travel from home through every site in order.
    n_constraints, unmet_constraints : int
        Precedence constraints (a site near another thread's path goes first), and how many
        the order could not meet (only for cyclic constraints).
    """

    order: np.ndarray
    exit_xy_um: np.ndarray
    implant_xy_um: np.ndarray
    travel_mm: float
    n_constraints: int
    unmet_constraints: int

    @property
    def rank(self) -> np.ndarray:
        """1-based insertion number of each site (``rank[i] == 1``: site ``i`` goes first)."""
        rank = np.empty(self.order.size, dtype=np.intp)
        rank[self.order] = np.arange(1, self.order.size + 1)
        return rank


def _distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


def _precedence(sites: np.ndarray, exits: np.ndarray, clearance_um: float) -> np.ndarray:
    """``P[a, b]``: site ``a`` lies within ``clearance_um`` of the thread of ``b`` (a goes first)."""
    start = exits[None, :, :]  # segment of thread b from its exit ...
    direction = (sites - exits)[None, :, :]  # ... to its site
    offset = sites[:, None, :] - start
    length2 = np.maximum((direction**2).sum(axis=2), 1e-12)
    t = np.clip((offset * direction).sum(axis=2) / length2, 0.0, 1.0)
    distance = np.sqrt(((offset - t[..., None] * direction) ** 2).sum(axis=2))
    constraint = distance < clearance_um
    np.fill_diagonal(constraint, False)
    return constraint


def _nearest_neighbour(sites, home, precedence) -> tuple[list[int], int]:
    n = sites.shape[0]
    done = np.zeros(n, dtype=bool)
    waiting = precedence.sum(axis=0)  # unmet predecessors of each site
    position = home
    route, unmet = [], 0
    for _ in range(n):
        ready = ~done & (waiting == 0)
        if not ready.any():  # a cycle: take the site with fewest unmet predecessors
            fewest = np.where(done, np.iinfo(np.intp).max, waiting).min()
            ready = ~done & (waiting == fewest)
            unmet += int(fewest)
        distance = np.where(ready, np.hypot(*(sites - position).T), np.inf)
        index = int(np.argmin(distance))
        route.append(index)
        done[index] = True
        waiting = waiting - precedence[index].astype(waiting.dtype)
        position = sites[index]
    return route, unmet


def _two_opt(route: np.ndarray, sites: np.ndarray, home: np.ndarray, precedence: np.ndarray) -> np.ndarray:
    route = route.copy()
    n = route.size
    if n < 3:
        return route
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    for _ in range(MAX_TWO_OPT_MOVES):
        points = sites[route]
        previous = np.vstack([home[None, :], points[:-1]])  # point before position i
        d_prev = np.hypot(*(points - previous).T)  # edge into position i
        d_next = np.append(d_prev[1:], 0.0)  # edge out of position j (none after the last)
        into_j = _distance_matrix(previous, points)  # previous[i] -> points[j]
        out_i = np.zeros((n, n))
        out_i[:, :-1] = _distance_matrix(points, points[1:])  # points[i] -> points[j + 1]
        delta = into_j + out_i - d_prev[:, None] - d_next[None, :]
        improving = np.argwhere(upper & (delta < -1e-9))
        if improving.size == 0:
            break
        improving = improving[np.argsort(delta[improving[:, 0], improving[:, 1]])]
        for i, j in improving:
            stretch = route[i:j + 1]
            if not precedence[np.ix_(stretch, stretch)].any():
                route[i:j + 1] = stretch[::-1]
                break
        else:
            break
    return route


def order_insertions(
    sites_xy_um,
    *,
    implant_xy_um=None,
    exit_radius_um: float = DEFAULT_EXIT_RADIUS_UM,
    exit_xy_um=None,
    thread_clearance_um: float = 52.0,
) -> InsertionOrder:
    """Assign threads to exits and order the insertions (see the module docstring).

    Parameters
    ----------
    sites_xy_um : array-like, shape (n_sites, 2)
        Insertion sites, µm from the image's top-left corner.
    implant_xy_um : array-like, shape (2,), optional
        Implant centre and robot home; default the sites' centroid.
    exit_radius_um : float
        Radius of the circle of exit points (default 1000 µm); ignored with ``exit_xy_um``.
    exit_xy_um : array-like, shape (n_sites, 2), optional
        The exit points themselves (assigned to sites by least total length).
    thread_clearance_um : float
        How close to a laid thread the needle may not come (default 52 µm, the default
        vessel clearance: needle radius plus the positioning errors).

    Returns
    -------
    InsertionOrder
    """
    from scipy.optimize import linear_sum_assignment

    sites = check_array(sites_xy_um, "sites_xy_um", ndim=2, dtype=np.float64)
    if sites.shape[1] != 2:
        raise InvalidInputError(f"sites_xy_um must have shape (n_sites, 2), got {sites.shape}")
    n = sites.shape[0]
    thread_clearance_um = check_nonnegative(thread_clearance_um, "thread_clearance_um")
    centre = sites.mean(axis=0) if n and implant_xy_um is None else np.zeros(2)
    if implant_xy_um is not None:
        centre = check_array(implant_xy_um, "implant_xy_um", shape=(2,), dtype=np.float64)
    if n == 0:
        return InsertionOrder(np.zeros(0, dtype=np.intp), np.zeros((0, 2)), centre, 0.0, 0, 0)
    if exit_xy_um is None:
        radius = check_positive(exit_radius_um, "exit_radius_um")
        angle = 2.0 * np.pi * np.arange(n) / n
        exits = centre + radius * np.column_stack([np.cos(angle), np.sin(angle)])
    else:
        exits = check_array(exit_xy_um, "exit_xy_um", shape=(n, 2), dtype=np.float64)
    site_index, exit_index = linear_sum_assignment(_distance_matrix(sites, exits))
    assigned = np.empty_like(exits)
    assigned[site_index] = exits[exit_index]
    precedence = _precedence(sites, assigned, thread_clearance_um)
    route, _ = _nearest_neighbour(sites, centre, precedence)
    route = _two_opt(np.asarray(route, dtype=np.intp), sites, centre, precedence)
    path = np.vstack([centre[None, :], sites[route]])
    travel_mm = float(np.hypot(*np.diff(path, axis=0).T).sum()) / 1000.0
    rank = np.empty(n, dtype=np.intp)
    rank[route] = np.arange(n)
    unmet = int((precedence & (rank[:, None] > rank[None, :])).sum())
    return InsertionOrder(route, assigned, centre, travel_mm, int(precedence.sum()), unmet)

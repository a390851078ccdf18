"""Plotly figure builders. Each takes plain arrays / tables plus sentence texts and tags (never a model) and
returns a `plotly.graph_objects.Figure`; `write_figures` saves them as offline HTML, PNG and SVG."""

from anchors.viz.agreement import method_agreement
from anchors.viz.categories import category_figure
from anchors.viz.curves import early_answering_curve, transplant_curve
from anchors.viz.export import notebook_images, standalone_html, write_figures, write_static
from anchors.viz.graph import select_edges, sentence_graph
from anchors.viz.matrices import head_map, layer_sentence_map, sentence_heatmap, vertical_profile
from anchors.viz.sentences import importance_bars, importance_by_position
from anchors.viz.style import metric_label
from anchors.viz.tables import results_table

__all__ = [
    "category_figure",
    "early_answering_curve",
    "head_map",
    "importance_bars",
    "importance_by_position",
    "layer_sentence_map",
    "method_agreement",
    "notebook_images",
    "metric_label",
    "results_table",
    "select_edges",
    "sentence_graph",
    "sentence_heatmap",
    "standalone_html",
    "transplant_curve",
    "vertical_profile",
    "write_figures",
    "write_static",
]

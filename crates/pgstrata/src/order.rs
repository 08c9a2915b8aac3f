//! Orders of things that depend on each other: packages on the packages they use, managed statements on the
//! objects they reference, bundled files on each other. Pure graph algorithms over `usize` nodes whose edges point
//! at what a node needs; every topological sort of the crate is one of these, and each reports a cycle as the
//! nodes in it (callers name them in their own error).
//!
//! Two tie-breaks exist because both are visible in what Strata produces: [`depth_first`] keeps a node's
//! dependencies right before it (packages: a package's uses deploy just before it), [`smallest_first`] takes the
//! lowest-numbered node that is ready (managed statements in file order, bundled files in path order).

/// Strongly connected components, each emitted after the components it has edges to
/// (iterative Tarjan; roots and edges visited in index order, so the result is deterministic).
pub(crate) fn components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next_index = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge position)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = work.last_mut() {
            if let Some(&w) = edges[v].get(*pos) {
                *pos += 1;
                if index[w] == usize::MAX {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out
}

/// Every node after the nodes it needs, depth first: roots in index order, each node's needs in list order, a node
/// placed right after the last of its needs. Err: a cycle, as the chain of nodes from the first node met again
/// back to itself (`[a, b, a]`).
pub(crate) fn depth_first(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        node: usize,
        needs: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[node] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&n| n == node).unwrap_or(0);
                let mut chain = path[start..].to_vec();
                chain.push(node);
                return Err(chain);
            }
            Mark::New => {}
        }
        marks[node] = Mark::Visiting;
        path.push(node);
        for &n in &needs[node] {
            visit(n, needs, marks, path, out)?;
        }
        path.pop();
        marks[node] = Mark::Done;
        out.push(node);
        Ok(())
    }
    let mut marks = vec![Mark::New; needs.len()];
    let mut out = Vec::with_capacity(needs.len());
    for node in 0..needs.len() {
        visit(node, needs, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// Every node after the nodes it needs, the lowest-numbered ready node first (Kahn). Edges to nodes outside
/// `0..needs.len()` are ignored. Err: the nodes left (in a cycle, or after one), in index order.
pub(crate) fn smallest_first(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = needs.len();
    let mut missing = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, list) in needs.iter().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        for &d in list.iter().filter(|&&d| d < n) {
            if seen.insert(d) {
                missing[node] += 1;
                users[d].push(node);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&node| missing[node] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(node) = ready.pop_first() {
        out.push(node);
        for &u in &users[node] {
            missing[u] -= 1;
            if missing[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if out.len() == n {
        return Ok(out);
    }
    let mut done = vec![false; n];
    for &node in &out {
        done[node] = true;
    }
    Err((0..n).filter(|&node| !done[node]).collect())
}

/// A cycle among `left` (nodes that [`smallest_first`] could not order): from the first of them, follow the first
/// need that is also left until a node repeats; the chain starts and ends with that node.
pub(crate) fn cycle_among(needs: &[Vec<usize>], left: &[usize]) -> Vec<usize> {
    let Some(&first) = left.first() else {
        return Vec::new();
    };
    let mut chain = vec![first];
    loop {
        let last = chain[chain.len() - 1];
        let Some(next) = needs[last].iter().copied().find(|d| left.contains(d)) else {
            return chain;
        };
        if let Some(pos) = chain.iter().position(|&c| c == next) {
            let mut cycle = chain.split_off(pos);
            cycle.push(next);
            return cycle;
        }
        chain.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_first_keeps_needs_right_before_their_user() {
        // 0 needs 2; 1 needs nothing.
        assert_eq!(depth_first(&[vec![2], vec![], vec![]]), Ok(vec![2, 0, 1]));
        assert_eq!(
            depth_first(&[vec![1], vec![2], vec![0]]),
            Err(vec![0, 1, 2, 0])
        );
    }

    #[test]
    fn smallest_first_takes_the_lowest_ready_node() {
        assert_eq!(
            smallest_first(&[vec![2], vec![], vec![]]),
            Ok(vec![1, 2, 0])
        );
        let needs = [vec![], vec![0], vec![3], vec![4], vec![3]];
        assert_eq!(smallest_first(&needs), Err(vec![2, 3, 4]));
        assert_eq!(cycle_among(&needs, &[2, 3, 4]), vec![3, 4, 3]);
    }

    #[test]
    fn components_come_after_what_they_need() {
        assert_eq!(
            components(&[vec![1], vec![0], vec![]]),
            vec![vec![0, 1], vec![2]]
        );
        assert_eq!(
            components(&[vec![2], vec![], vec![]]),
            vec![vec![2], vec![0], vec![1]]
        );
    }
}

fn main() {
    print!("{}", support_operator::crd::crds_yaml());
}
